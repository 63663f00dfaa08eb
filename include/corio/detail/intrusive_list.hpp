// A doubly linked intrusive list: waiters link themselves in without allocating, and can
// unlink themselves in O(1) when cancelled.
#pragma once

#include <cstddef>

namespace corio::detail {

template <class Tag>
struct ListHook {
    ListHook* prev = nullptr;
    ListHook* next = nullptr;
    bool linked = false;
};

template <class T, class Tag = T>
class IntrusiveList {
    using Hook = ListHook<Tag>;

public:
    IntrusiveList() = default;
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    T* front() const noexcept { return head_ ? cast(head_) : nullptr; }

    void push_back(T& item) noexcept {
        Hook& h = item;
        h.prev = tail_;
        h.next = nullptr;
        h.linked = true;
        if (tail_) tail_->next = &h; else head_ = &h;
        tail_ = &h;
        ++size_;
    }
    void push_front(T& item) noexcept {
        Hook& h = item;
        h.prev = nullptr;
        h.next = head_;
        h.linked = true;
        if (head_) head_->prev = &h; else tail_ = &h;
        head_ = &h;
        ++size_;
    }
    void remove(T& item) noexcept {
        Hook& h = item;
        if (!h.linked) return;
        if (h.prev) h.prev->next = h.next; else head_ = h.next;
        if (h.next) h.next->prev = h.prev; else tail_ = h.prev;
        h.prev = h.next = nullptr;
        h.linked = false;
        --size_;
    }
    T* pop_front() noexcept {
        if (!head_) return nullptr;
        T* item = cast(head_);
        remove(*item);
        return item;
    }
    static bool is_linked(const T& item) noexcept { return static_cast<const Hook&>(item).linked; }

    template <class F>
    void for_each(F&& f) const {
        for (Hook* h = head_; h;) {
            Hook* next = h->next;
            f(*cast(h));
            h = next;
        }
    }

private:
    static T* cast(Hook* h) noexcept { return static_cast<T*>(h); }
    Hook* head_ = nullptr;
    Hook* tail_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace corio::detail
