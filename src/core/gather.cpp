#include "corio/gather.hpp"

#include "corio/detail/task_set_waiter.hpp"

namespace corio::detail {

namespace {

// A child that awaits the gathering task would pass each cancel back to it: refused there.
void cancel_pending(const std::vector<FutureBase*>& children, const std::string& message) {
    require_task().pass_cancel_on([&] {
        for (FutureBase* f : children)
            if (!f->done()) f->cancel(message);
    });
}

}  // namespace

Coro<> gather_wait(std::vector<FutureBase*> children, bool return_exceptions) {
    std::exception_ptr cancelled;
    const FutureBase* first_failure = nullptr;
    bool passed_to_children = false;
    try {
        TaskSetWaiter waiter(children, return_exceptions ? TaskSetWaiter::Until::AllDone
                                                         : TaskSetWaiter::Until::FirstFailure);
        waiter.pass_cancel_on_to_futures();
        co_await waiter;
        if (waiter.cancel_passed_on()) {
            // The children have our cancel (asyncio's _cancel_requested): it comes back to us.
            passed_to_children = true;
            require_task().passed_on_settled(true);
            throw CancelledError(waiter.passed_cancel_message());
        }
        if (!return_exceptions) {
            for (FutureBase* f : waiter.completion_order())
                if (f->state() != FutureBase::State::Succeeded) {
                    first_failure = f;
                    break;
                }
            if (!first_failure)  // failed before we waited: take the first in argument order
                for (FutureBase* f : children)
                    if (f->done() && f->state() != FutureBase::State::Succeeded) {
                        first_failure = f;
                        break;
                    }
        }
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        // Cancelling the gather cancels every child, and waits for them all to finish. Without
        // return_exceptions, the first child to end badly decides, as in asyncio's
        // _done_callback: a real failure (an error raised while cancelling) is not turned into
        // a CancelledError, nor, under a timeout, into a TimeoutError.
        CleanupAfterCancel cleaning;
        if (!passed_to_children) cancel_pending(children, require_task().cancel_message());
        std::vector<FutureBase*> order;
        for (FutureBase* f : children)
            if (f->done() && f->state() != FutureBase::State::Succeeded) order.push_back(f);
        for (;;) {
            TaskSetWaiter rest(children, TaskSetWaiter::Until::AllDone);
            bool interrupted = false;
            try {
                co_await rest;
            } catch (const CancelledError& again) {
                // Already cancelling: wait on, but pass the new request on (asyncio's
                // _GatheringFuture.cancel calls every unfinished child's cancel(msg) each time),
                // so a child that handled the first one still hears this one.
                interrupted = true;
                cancel_pending(children, again.message());
                cancelled = std::current_exception();
            }
            order.insert(order.end(), rest.completion_order().begin(), rest.completion_order().end());
            if (!interrupted) break;
        }
        // asyncio's gather looks at every child's exception: none is reported as never retrieved.
        for (FutureBase* f : children) f->mark_retrieved();
        if (!return_exceptions) {
            for (FutureBase* f : order) {
                if (f->state() == FutureBase::State::Failed) f->rethrow_if_failed();
                if (f->state() == FutureBase::State::Cancelled) break;
            }
        }
        std::rethrow_exception(cancelled);
    }
    if (first_failure) {
        cancel_pending(children, {});
        Coro<bool> rest = wait_all_absorbing(children);
        bool cancelled_meanwhile = co_await std::move(rest);
        for (FutureBase* f : children)
            if (f != first_failure) f->mark_retrieved();
        if (cancelled_meanwhile) {
            // The failure was looked at (asyncio's gather would have raised it already): it is
            // not reported as never retrieved, though our own cancellation goes out instead.
            const_cast<FutureBase*>(first_failure)->mark_retrieved();
            require_task().cancel_delivered();
            throw CancelledError(require_task().cancel_message());
        }
        const_cast<FutureBase*>(first_failure)->rethrow_if_failed();
    }
}

}  // namespace corio::detail
