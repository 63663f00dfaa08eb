// The loop's timers: a binary heap whose nodes know their index, so cancelling is O(log n) and
// the heap never holds a pointer to a node that is gone.
#include <cstdint>
#include <utility>

#include "corio/loop.hpp"

namespace corio {

void EventLoop::add_timer(detail::TimerNode& node) {
    node.seq = ++timer_seq_;
    // 2^32 armed timers would take 96 GiB of nodes: the 32-bit index cannot overflow first.
    timers_.push_back(&node);  // first: if it throws, the node stays unarmed (heap_index npos)
    node.heap_index = std::uint32_t(timers_.size() - 1);
    heap_up(node.heap_index);
}

void EventLoop::remove_timer(detail::TimerNode& node) noexcept {
    if (node.heap_index == detail::TimerNode::npos) return;
    std::size_t i = node.heap_index;
    std::size_t last = timers_.size() - 1;
    if (i != last) {
        timers_[i] = timers_[last];
        timers_[i]->heap_index = std::uint32_t(i);
        timers_.pop_back();
        heap_down(i);
        heap_up(i);
    } else {
        timers_.pop_back();
    }
    node.heap_index = detail::TimerNode::npos;
}

void EventLoop::heap_up(std::size_t i) noexcept {
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!earlier(timers_[i], timers_[parent])) break;
        std::swap(timers_[i], timers_[parent]);
        timers_[i]->heap_index = std::uint32_t(i);
        timers_[parent]->heap_index = std::uint32_t(parent);
        i = parent;
    }
}

void EventLoop::heap_down(std::size_t i) noexcept {
    std::size_t n = timers_.size();
    for (;;) {
        std::size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < n && earlier(timers_[l], timers_[best])) best = l;
        if (r < n && earlier(timers_[r], timers_[best])) best = r;
        if (best == i) break;
        std::swap(timers_[i], timers_[best]);
        timers_[i]->heap_index = std::uint32_t(i);
        timers_[best]->heap_index = std::uint32_t(best);
        i = best;
    }
}

void EventLoop::fire_due_timers() {
    if (timers_.empty()) return;
    Clock::time_point now = time();
    while (!timers_.empty() && timers_.front()->when <= now) {
        detail::TimerNode* t = timers_.front();
        remove_timer(*t);
        t->fire(t);
    }
}

}  // namespace corio
