#include "corio/gather.hpp"

#include "corio/detail/task_set_waiter.hpp"

#include <optional>
#include <unordered_set>

namespace corio::detail {

namespace {

// A child that awaits the gathering task would pass each cancel back to it: refused there.
// True when a child took it.
bool cancel_pending(const std::vector<FutureBase*>& children, const std::string& message) {
    bool reached = false;
    require_task().pass_cancel_on([&] {
        for (FutureBase* f : children)
            if (!f->done() && f->cancel(message)) reached = true;
    });
    return reached;
}

// The CancelledError a child ended with (asyncio's gather raises a child's own,
// fut._make_cancelled_error()).
std::exception_ptr cancellation_of(FutureBase& f) {
    try {
        f.rethrow_if_failed();
    } catch (const CancelledError&) {
        return std::current_exception();
    } catch (...) {
    }
    return nullptr;
}

}  // namespace

Coro<> gather_wait(std::vector<FutureBase*> children, bool return_exceptions) {
    std::exception_ptr cancelled;
    const FutureBase* first_failure = nullptr;
    // The children in the order they ended, for the cancelled path: those done before the wait
    // (in argument order), then as the waits saw them.
    std::vector<FutureBase*> order;
    for (FutureBase* f : children)
        if (f->done()) order.push_back(f);
    std::optional<TaskSetWaiter> first;
    first.emplace(children, return_exceptions ? TaskSetWaiter::Until::AllDone : TaskSetWaiter::Until::FirstFailure);
    first->pass_cancel_on_to_futures();
    try {
        TaskSetWaiter& waiting = *first;  // a named lvalue: g++ 12 copies the operand `*first`
        co_await waiting;
        if (first->cancel_passed_on()) throw CancelledError(first->passed_cancel_message());
        if (!return_exceptions) {
            for (FutureBase* f : first->completion_order())
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
        // Our cancel went to the children (asyncio's _cancel_requested): it comes back to us as a
        // child's CancelledError, or is absorbed by a child whose error goes out instead. Settled
        // once that is known (TaskBase::passed_on_settled), on every way out of this path.
        bool passed_to_children = first->cancel_passed_on();
        // A child had failed, which woke us, and our cancel came only then: asyncio's gather was
        // done with that error, and the task's cancel replaces it (its _must_cancel), as while
        // gather waits for the failed child's siblings below.
        bool failure_came_first = false;
        if (!return_exceptions && !passed_to_children)
            for (FutureBase* f : first->completion_order())
                if (f->state() != FutureBase::State::Succeeded) {
                    failure_came_first = f->state() == FutureBase::State::Failed;
                    break;
                }
        order.insert(order.end(), first->completion_order().begin(), first->completion_order().end());
        first.reset();
        std::unordered_set<FutureBase*> seen(order.begin(), order.end());
        for (FutureBase* f : children)  // ended between our wake-up and now
            if (f->done() && seen.insert(f).second) order.push_back(f);
        if (!passed_to_children && cancel_pending(children, require_task().cancel_message())) {
            require_task().note_passed_on();
            passed_to_children = true;
        }
        for (;;) {
            // Already cancelling: wait on, but pass each new request on at once (asyncio's
            // _GatheringFuture.cancel calls every unfinished child's cancel(msg) each time), so
            // a child that handled the first one still hears this one.
            TaskSetWaiter rest(children, TaskSetWaiter::Until::AllDone);
            rest.pass_cancel_on_to_futures();
            bool interrupted = false;
            try {
                co_await rest;
            } catch (const CancelledError&) {
                interrupted = true;  // no child left to take it (all had just finished)
                cancelled = std::current_exception();
            }
            passed_to_children = passed_to_children || rest.cancel_passed_on();
            for (FutureBase* f : rest.completion_order())
                if (seen.insert(f).second) order.push_back(f);
            if (!interrupted) break;
        }
        // asyncio's gather looks at every child's exception: none is reported as never retrieved.
        for (FutureBase* f : children) f->mark_retrieved();
        // The CancelledError that goes out is a child's own when one ended cancelled: the first
        // to end badly without return_exceptions (it completed asyncio's gather), the last
        // cancelled one with it; unless, without return_exceptions, a child failed first.
        FutureBase* decides = nullptr;
        if (!return_exceptions && !failure_came_first) {
            for (FutureBase* f : order) {
                if (f->state() == FutureBase::State::Failed) {
                    require_task().passed_on_settled(false);
                    f->rethrow_if_failed();
                }
                if (f->state() == FutureBase::State::Cancelled) {
                    decides = f;
                    break;
                }
            }
        } else if (return_exceptions) {
            for (FutureBase* f : order)
                if (f->state() == FutureBase::State::Cancelled) decides = f;
        }
        require_task().passed_on_settled(true);
        if (passed_to_children && decides)
            if (std::exception_ptr own = cancellation_of(*decides)) cancelled = std::move(own);
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
