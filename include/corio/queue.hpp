// asyncio.Queue, PriorityQueue and LifoQueue.
//
//   corio::Queue<Job> q(100);
//   co_await q.put(std::move(job));  Job j = co_await q.get();  q.task_done();  co_await q.join();
//
// Where asyncio wakes a waiter and lets it re-check when it runs, corio hands over what the
// waiter waited for at the moment it is woken: a getter is given its item, a putter a reserved
// slot. Between "woken" and "resumed" a cancellation may land (asyncio's P6 bugs); with the
// hand-off explicit, the cancelled waiter gives the item or slot back to the next waiter, and
// a newcomer cannot barge past a woken waiter and take what was meant for it.
//
// Differences from asyncio that follow from the hand-off:
// * An item put while getters wait goes straight to the first getter: it never counts in
//   qsize(), so it does not count against maxsize either.
// * full() and put_nowait() count the slots reserved for woken putters.
// * A getter that was handed an item and is then cancelled puts it back where it would be
//   taken next, even if that briefly makes qsize() exceed maxsize.
// task_done() on an underflow throws std::logic_error (asyncio: ValueError).
#pragma once

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/detail/intrusive_list.hpp"
#include "corio/detail/wait_node.hpp"
#include "corio/errors.hpp"

namespace corio {

namespace detail {

// Storage policies. push_next() puts an item back so that it is the next one taken: a getter
// that was handed an item and then cancelled must not let a later item overtake it (Q4).
template <class T>
class FifoStore {
public:
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    void push(T&& item) { items_.push_back(std::move(item)); }
    void push_next(T&& item) { items_.push_front(std::move(item)); }
    T pop() {
        T item = std::move(items_.front());
        items_.pop_front();
        return item;
    }

private:
    std::deque<T> items_;
};

template <class T>
class LifoStore {
public:
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    void push(T&& item) { items_.push_back(std::move(item)); }
    void push_next(T&& item) { push(std::move(item)); }
    T pop() {
        T item = std::move(items_.back());
        items_.pop_back();
        return item;
    }

private:
    std::vector<T> items_;
};

// A binary heap with the smallest item (by Compare) on top. Ties come out in no particular
// order, as with asyncio's heapq.
template <class T, class Compare>
class HeapStore {
public:
    explicit HeapStore(Compare comp) : comp_(std::move(comp)) {}
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    void push(T&& item) {
        items_.push_back(std::move(item));
        std::push_heap(items_.begin(), items_.end(), greater());
    }
    // Whatever was taken is still the smallest, so pushing it puts it back on top.
    void push_next(T&& item) { push(std::move(item)); }
    T pop() {
        std::pop_heap(items_.begin(), items_.end(), greater());
        T item = std::move(items_.back());
        items_.pop_back();
        return item;
    }

private:
    // std::*_heap keep the greatest on top; swapping the arguments makes that the smallest.
    auto greater() {
        return [this](const T& a, const T& b) { return comp_(b, a); };
    }
    std::vector<T> items_;
    Compare comp_;
};

// The queue proper; Queue, PriorityQueue and LifoQueue only choose its storage.
template <class T, class Store>
class BasicQueue {
    struct Waiter;
    using WaiterList = IntrusiveList<Waiter, WaitTag>;

    // What all three awaiters share: which queue they wait on and which of its lists holds
    // them. The queue's destructor clears both, so a task left waiting on a destroyed queue
    // can still be cancelled (or its frame destroyed) safely.
    struct Waiter : ListedWaitNode {
        explicit Waiter(BasicQueue& queue) noexcept : q(&queue) {}
        // Movable until awaited, so that wait_for(q.get(), t) can take an awaiter.
        Waiter(Waiter&& other) noexcept : ListedWaitNode(std::move(other)), q(other.q) {}

        BasicQueue* q;
        WaiterList* list = nullptr;

        void link(WaiterList& l) noexcept {
            l.push_back(*this);
            list = &l;
        }
        void unlink() noexcept {
            if (list) {
                list->remove(*this);
                list = nullptr;
            }
        }
        void detach() noexcept override { unlink(); }

    protected:
        ~Waiter() = default;
    };

public:
    using value_type = T;

    class [[nodiscard]] GetAwaiter final : public Waiter {
    public:
        explicit GetAwaiter(BasicQueue& queue) noexcept : Waiter(queue) {}
        GetAwaiter(GetAwaiter&& other) noexcept : Waiter(std::move(other)) {}
        // Only a frame destroyed while suspended here (the loop closing) gets here linked;
        // an item it had been handed goes down with it.
        ~GetAwaiter() { this->unlink(); }

        bool await_ready() const noexcept { return !this->q->store_.empty() || this->q->shutdown_; }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!this->suspend(h)) return true;  // woken already, to take a pending cancellation
            this->link(this->q->getters_);
            return true;
        }
        T await_resume() {
            this->unlink();
            if (item_) {
                // A shutdown(immediate=true) since the hand-off drains this item too.
                bool drained = this->q && this->q->immediate_;
                if (this->cancelled || drained) {
                    if (this->q) this->q->give_back(std::move(*item_));
                    item_.reset();
                    this->throw_if_cancelled();
                    throw QueueShutDown();
                }
                return std::move(*item_);
            }
            this->throw_if_cancelled();
            // Not suspended, or woken by shutdown(): either way the store decides.
            if (!this->q) throw QueueShutDown();
            return this->q->take_or_throw();
        }

    private:
        friend class BasicQueue;
        std::optional<T> item_;  // handed over by a put while this getter waited
    };

    class [[nodiscard]] PutAwaiter final : public Waiter {
    public:
        PutAwaiter(BasicQueue& queue, T&& item) : Waiter(queue), item_(std::move(item)) {}
        PutAwaiter(BasicQueue& queue, const T& item) : Waiter(queue), item_(item) {}
        PutAwaiter(PutAwaiter&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
            : Waiter(std::move(other)), item_(std::move(other.item_)) {}
        ~PutAwaiter() {
            // A frame destroyed while holding a slot must not shrink the queue for good.
            if (granted_ && this->q) --this->q->reserved_;
            this->unlink();
        }

        bool await_ready() const noexcept { return this->q->shutdown_ || this->q->has_room(); }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!this->suspend(h)) return true;  // woken already, to take a pending cancellation
            this->link(this->q->putters_);
            return true;
        }
        void await_resume() {
            this->unlink();
            BasicQueue* q = this->q;
            if (granted_) {
                granted_ = false;
                if (!q) throw QueueShutDown();
                --q->reserved_;
                if (this->cancelled || q->shutdown_) {
                    q->grant_putters();  // the slot passes to the next putter
                    this->throw_if_cancelled();
                    throw QueueShutDown();
                }
                try {
                    q->deliver(std::move(item_));
                } catch (...) {
                    q->grant_putters();  // the item's move threw: the slot is free for the next
                    throw;
                }
                // Handed straight to a getter, the item left the slot free again.
                q->grant_putters();
                return;
            }
            this->throw_if_cancelled();
            // Not suspended (there was room), or woken by shutdown().
            if (!q || q->shutdown_) throw QueueShutDown();
            q->deliver(std::move(item_));
        }

    private:
        friend class BasicQueue;
        T item_;
        bool granted_ = false;  // holds one of the queue's reserved slots
    };

    class [[nodiscard]] JoinAwaiter final : public Waiter {
    public:
        explicit JoinAwaiter(BasicQueue& queue) noexcept : Waiter(queue) {}
        JoinAwaiter(JoinAwaiter&& other) noexcept : Waiter(std::move(other)) {}
        ~JoinAwaiter() { this->unlink(); }

        bool await_ready() const noexcept { return this->q->unfinished_ == 0; }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!this->suspend(h)) return true;  // woken already, to take a pending cancellation
            this->link(this->q->joiners_);
            return true;
        }
        void await_resume() {
            this->unlink();
            this->throw_if_cancelled();
        }
    };

    explicit BasicQueue(std::ptrdiff_t maxsize, Store store = Store())
        : store_(std::move(store)), maxsize_(maxsize) {}
    BasicQueue(const BasicQueue&) = delete;
    BasicQueue& operator=(const BasicQueue&) = delete;
    ~BasicQueue() {
        for (WaiterList* l : {&getters_, &putters_, &granted_, &joiners_}) {
            while (Waiter* w = l->pop_front()) {
                w->list = nullptr;
                w->q = nullptr;
            }
        }
    }

    std::ptrdiff_t maxsize() const noexcept { return maxsize_; }
    std::size_t qsize() const noexcept { return store_.size(); }
    bool empty() const noexcept { return store_.empty(); }
    // True when put_nowait() would throw QueueFull: slots promised to woken putters are taken.
    bool full() const noexcept { return !has_room(); }

    GetAwaiter get() noexcept { return GetAwaiter(*this); }
    PutAwaiter put(T&& item) { return PutAwaiter(*this, std::move(item)); }
    PutAwaiter put(const T& item) { return PutAwaiter(*this, item); }
    JoinAwaiter join() noexcept { return JoinAwaiter(*this); }

    // Moves from `item` only when it succeeds, so a rejected move-only item is not lost.
    void put_nowait(T&& item) {
        check_put();
        deliver(std::move(item));
    }
    void put_nowait(const T& item) {
        check_put();
        deliver(T(item));
    }

    T get_nowait() {
        if (store_.empty()) {
            if (shutdown_) throw QueueShutDown();
            throw QueueEmpty();
        }
        return take();
    }

    void task_done() {
        if (unfinished_ == 0) throw std::logic_error("task_done() called too many times");
        if (--unfinished_ == 0) wake_all(joiners_);
    }

    // asyncio 3.13. Blocked putters and later puts throw QueueShutDown; getters still drain
    // what is left and throw once it is empty. `immediate` discards the items now (each
    // counted as done for join()), so every later get throws at once.
    void shutdown(bool immediate = false) {
        shutdown_ = true;
        if (immediate) {
            immediate_ = true;
            while (!store_.empty()) {
                (void)store_.pop();
                if (unfinished_ > 0) --unfinished_;
            }
            if (unfinished_ == 0) wake_all(joiners_);
        }
        wake_all(getters_);
        wake_all(putters_);
    }

private:
    static Waiter* pop(WaiterList& l) noexcept {
        Waiter* w = l.pop_front();
        if (w) w->list = nullptr;
        return w;
    }
    // Woken waiters stay linked (in granted_) until they resume, so that a queue destroyed
    // in between can still tell them it is gone instead of leaving them a dangling pointer.
    void wake_all(WaiterList& l) noexcept {
        while (Waiter* w = pop(l)) {
            w->link(granted_);
            w->wake();
        }
    }

    // Counts reserved slots, so that nobody barges past a putter that was woken for a slot.
    bool has_room() const noexcept {
        return maxsize_ <= 0 || store_.size() + reserved_ < std::size_t(maxsize_);
    }

    void check_put() const {
        if (shutdown_) throw QueueShutDown();
        if (!has_room()) throw QueueFull();
    }

    // A successful put. Getters wait only while the store is empty, so the first one gets
    // the item directly. An item whose move throws leaves the queue and its waiters as they
    // were (the getter still waits, first in line).
    void deliver(T&& item) {
        if (!hand_to_first_getter(item)) store_.push(std::move(item));
        ++unfinished_;
    }

    bool hand_to_first_getter(T& item) {
        auto* g = static_cast<GetAwaiter*>(getters_.front());
        if (!g) return false;
        g->item_.emplace(std::move(item));  // first: if it throws, the getter is still queued
        pop(getters_);
        g->link(granted_);
        g->wake();
        return true;
    }

    // An item a cancelled getter had been handed: it goes to the next getter, or back where
    // it would be taken next, and stays counted as unfinished once. An item that cannot be
    // moved back (its move throws) is dropped and counted as done: the getter's cancellation
    // is what it throws.
    void give_back(T&& item) noexcept {
        if (!immediate_) {
            try {
                if (!hand_to_first_getter(item)) store_.push_next(std::move(item));
                return;
            } catch (...) {
            }
        }
        // The queue was drained after the hand-off (or the item is lost): drain this one too.
        if (unfinished_ > 0 && --unfinished_ == 0) wake_all(joiners_);
    }

    T take() {
        T item = store_.pop();
        grant_putters();
        return item;
    }

    T take_or_throw() {
        if (store_.empty()) throw QueueShutDown();
        return take();
    }

    void grant_putters() noexcept {
        while (!putters_.empty() && has_room()) {
            auto& p = static_cast<PutAwaiter&>(*pop(putters_));
            p.granted_ = true;
            ++reserved_;
            p.link(granted_);
            p.wake();
        }
    }

    Store store_;
    std::ptrdiff_t maxsize_;
    std::size_t reserved_ = 0;    // slots granted to woken putters that have not put yet
    std::size_t unfinished_ = 0;  // puts not yet matched by task_done()
    bool shutdown_ = false;
    bool immediate_ = false;
    WaiterList getters_;  // waiting for an item; only while the store is empty
    WaiterList putters_;  // waiting for a slot; only while the queue is full
    WaiterList granted_;  // woken (with an item, a slot, or by shutdown), not yet resumed
    WaiterList joiners_;
};

}  // namespace detail

// FIFO. maxsize <= 0 means unbounded.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
public:
    explicit Queue(std::ptrdiff_t maxsize = 0) : detail::BasicQueue<T, detail::FifoStore<T>>(maxsize) {}
};

// Smallest first, by Compare.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
public:
    explicit PriorityQueue(std::ptrdiff_t maxsize = 0, Compare comp = Compare())
        : detail::BasicQueue<T, detail::HeapStore<T, Compare>>(maxsize,
                                                               detail::HeapStore<T, Compare>(std::move(comp))) {}
};

// Last in, first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
public:
    explicit LifoQueue(std::ptrdiff_t maxsize = 0) : detail::BasicQueue<T, detail::LifoStore<T>>(maxsize) {}
};

}  // namespace corio
