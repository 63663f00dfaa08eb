// A doubly linked intrusive list: waiters link themselves in without allocating, and can
// unlink themselves in O(1) when cancelled. Circular and headed by one pointer (the head's prev
// is the tail), so a list costs 8 bytes and a hook 16: every task carries two hooks and a list
// of its waiters, and a million live tasks feel each byte.
#pragma once

namespace corio::detail {

template <class Tag>
struct ListHook {
    ListHook* prev = nullptr;
    ListHook* next = nullptr;  // null exactly when not linked
};

template <class T, class Tag = T>
class IntrusiveList {
    using Hook = ListHook<Tag>;

public:
    IntrusiveList() = default;
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;

    bool empty() const noexcept { return head_ == nullptr; }
    T* front() const noexcept { return head_ ? cast(head_) : nullptr; }

    void push_back(T& item) noexcept {
        Hook& h = item;
        if (!head_) {
            h.prev = h.next = &h;
            head_ = &h;
            return;
        }
        Hook* tail = head_->prev;
        h.prev = tail;
        h.next = head_;
        tail->next = &h;
        head_->prev = &h;
    }
    void push_front(T& item) noexcept {
        push_back(item);
        head_ = &static_cast<Hook&>(item);
    }
    void remove(T& item) noexcept {
        Hook& h = item;
        if (!h.next) return;
        if (h.next == &h) {
            head_ = nullptr;
        } else {
            h.prev->next = h.next;
            h.next->prev = h.prev;
            if (head_ == &h) head_ = h.next;
        }
        h.prev = h.next = nullptr;
    }
    T* pop_front() noexcept {
        if (!head_) return nullptr;
        T* item = cast(head_);
        remove(*item);
        return item;
    }
    static bool is_linked(const T& item) noexcept { return static_cast<const Hook&>(item).next != nullptr; }

    // `f` may unlink the item it is given (not others). Items linked during the walk, after
    // the item being visited is the last, are not visited.
    template <class F>
    void for_each(F&& f) const {
        for (Hook* h = head_; h;) {
            Hook* next = h->next == head_ ? nullptr : h->next;
            f(*cast(h));
            h = next;
        }
    }

private:
    static T* cast(Hook* h) noexcept { return static_cast<T*>(h); }
    Hook* head_ = nullptr;
};

}  // namespace corio::detail
