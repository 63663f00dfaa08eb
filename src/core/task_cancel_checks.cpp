// Debug mode's checks for the guides' "swallowed cancellation": a task that returns normally
// after its cancellation, or that is still running a second after a CancelledError of its own
// cancellation was thrown into it (a worker loop that catches it and carries on never returns).
#include <chrono>
#include <cstdint>
#include <string>

#include "corio/debug.hpp"
#include "corio/loop.hpp"
#include "corio/task.hpp"

namespace corio::detail {

// Long enough for a clean-up (a connection closed, a buffer flushed), short enough to be seen
// before anyone wonders why the shutdown hangs.
constexpr std::chrono::seconds kSwallowedCancelGrace{1};

void TaskBase::cancel_delivered() noexcept {
    if (!loop_->get_debug()) return;
    try {
        arm_swallow_check(SwallowCheck{++extras().cancel_deliveries});
    } catch (...) {
    }
}

// A check that fires this late saw a loop that was held up (an overloaded machine, a step that
// blocked): the task's own clean-up, due long before, was held up too and may not have had its
// turn yet, so the task gets another grace instead of a report, a few times at most (a loop
// held up for good, or a MockClock advanced by hand past each grace, still gets its report).
// (Found as a false report in a test's shutdown of 1,000 tasks on a loaded machine.)
constexpr std::chrono::milliseconds kSwallowCheckLateBy{100};
constexpr std::uint8_t kSwallowCheckLateGraces = 3;
// A task woken in the check's tick (a clean-up's sleep due at the same time) is looked at again
// once it has run: a few ticks, not another second, so that a worker swallowing its cancel with
// a one-second heartbeat, whose wake-ups meet every check, is still reported.
constexpr std::uint8_t kSwallowCheckResumeLooks = 4;

void TaskBase::arm_swallow_check(SwallowCheck check) {
    add_ref();
    StateRef<TaskBase> self(this);  // the timer's: released with it, run or not
    check.due = loop_->time() + kSwallowedCancelGrace;
    check.resume_looks = 0;
    loop_->call_later(kSwallowedCancelGrace,
                      [self = std::move(self), check] { self->check_still_running_after_cancel(check); });
}

void TaskBase::check_still_running_after_cancel(SwallowCheck check) noexcept {
    if (done() || !root_ || extras().cancel_deliveries != check.delivery) return;  // a later delivery's check decides
    if (task_cancel_requests_ <= absorbed_cancels_) return;                       // taken back with uncancel()
    if (!loop_->get_debug()) return;                                               // debug mode was turned off since
    try {
        if (extras().cleanups > 0) {  // corio's own clean-up (children to wait for): later
            arm_swallow_check(check);
            return;
        }
        if (loop_->time() - check.due > kSwallowCheckLateBy && check.late_graces < kSwallowCheckLateGraces) {
            ++check.late_graces;
            arm_swallow_check(check);
            return;
        }
        if (waiting_on_ != nullptr && waiting_on_->woken && check.resume_looks < kSwallowCheckResumeLooks) {
            ++check.resume_looks;
            add_ref();
            StateRef<TaskBase> self(this);
            loop_->call_soon([self = std::move(self), check] { self->check_still_running_after_cancel(check); });
            return;
        }
        ExceptionContext c;
        c.message = "Task " + name() + " is still running " + std::to_string(kSwallowedCancelGrace.count()) +
                    " s after a CancelledError of its cancellation was thrown into it (requested " +
                    std::to_string(task_cancel_requests_ - absorbed_cancels_) +
                    " time(s), not taken back with uncancel()): it may have swallowed it (catch it only to clean up, "
                    "then rethrow)";
        c.task_name = name();
        c.location = creation_site();
        c.call_graph = format_call_graph(*this);
        loop_->call_exception_handler(c);
    } catch (...) {
    }
}

CleanupAfterCancel::CleanupAfterCancel() noexcept : task_(nullptr) {
    TaskBase* t = running_loop() ? running_loop()->current_task() : nullptr;
    if (!t || !t->loop()->get_debug()) return;
    try {
        ++t->extras().cleanups;
        task_ = t;
    } catch (...) {
    }
}

CleanupAfterCancel::~CleanupAfterCancel() {
    if (task_) --task_->extras().cleanups;
}

void TaskBase::report_swallowed_cancel() noexcept {
    try {
        ExceptionContext c;
        c.message = "Task " + name() + " returned normally although its cancellation was requested " +
                    std::to_string(task_cancel_requests_ - absorbed_cancels_) +
                    " time(s): a CancelledError was swallowed (catch it only to clean up, then rethrow)";
        c.task_name = name();
        c.location = creation_site();
        loop_->call_exception_handler(c);
    } catch (...) {
    }
}

}  // namespace corio::detail
