// An intrusive FIFO of I/O operations, through IoOperation's next_/prev_: the backends keep
// their per-fd queues in it without allocating, so that a release or a cancel cannot fail.
#pragma once

#include "corio/backend.hpp"

namespace corio::detail {

// The operation's direction: a backend orders the operations of one fd by it, reads among
// reads (readiness waits for input included) and writes among writes.
inline bool reads(IoOperation::Kind k) noexcept {
    using K = IoOperation::Kind;
    return k == K::Read || k == K::Recv || k == K::Accept || k == K::RecvFrom || k == K::PollIn || k == K::ReadV;
}

struct OpQueue {
    IoOperation* head = nullptr;
    IoOperation* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    void push(IoOperation* op) noexcept {
        op->next_ = nullptr;
        op->prev_ = tail;
        if (tail)
            tail->next_ = op;
        else
            head = op;
        tail = op;
    }
    void remove(IoOperation* op) noexcept {
        if (op->prev_)
            op->prev_->next_ = op->next_;
        else
            head = op->next_;
        if (op->next_)
            op->next_->prev_ = op->prev_;
        else
            tail = op->prev_;
        op->next_ = op->prev_ = nullptr;
    }
    IoOperation* pop() noexcept {
        IoOperation* op = head;
        if (op) remove(op);
        return op;
    }
};

}  // namespace corio::detail
