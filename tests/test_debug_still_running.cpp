// Debug mode's report of a task still running a second after its CancelledError (D4, tested in
// test_debug_mode.cpp) must not fire when the loop itself was held up: the task's clean-up,
// due long before, had no turn yet. (A shutdown of 1,000 tasks on a loaded machine reported
// tasks whose 1 ms clean-up sleep was due in the same tick as the check.)
#include <corio/testing.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core_support.hpp"

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::capture_reports;
using corio_test::cleans_up_then_rethrows;
using corio_test::still_running_reports;
using corio_test::swallowing_worker;

namespace {

// The loop is held up for `held_up` (a step that blocked, an overloaded machine) right after
// the CancelledError was thrown into `body`: the timers due meanwhile fire at the next tick.
template <class Body>
Coro<> cancel_then_hold_the_loop(std::vector<ExceptionContext>* out, Body body, Clock::duration held_up) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<> task = create_task(body(), "task");
    co_await sleep(0s);
    task.cancel();
    co_await sleep(0s);  // the CancelledError is thrown into it: the check is armed
    clock.advance(held_up);
    Coro<> limited = wait_for(task, 20s);  // virtual time
    try {
        co_await std::move(limited);
    } catch (const CancelledError&) {
    } catch (const TimeoutError&) {
    }
    co_await sleep(3s);  // a check re-armed would have fired by now
}

// A clean-up that waits for something due 1.5 s after the cancellation.
Coro<> cleans_up_until_an_event_set_later() {
    auto ready = std::make_shared<Event>();
    get_running_loop().call_later(1500ms, [ready] { ready->set(); });
    bool cancelled = false;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await ready->wait();
        throw CancelledError();
    }
}

// The guides' worker loop that swallows its cancellation, with a one-second heartbeat: each of
// its wake-ups is due with the check (virtual time makes the two deadlines equal).
Coro<> swallows_with_a_one_second_heartbeat(std::shared_ptr<int> beats) {
    for (; *beats < 12; ++*beats) {
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
        }
    }
}

Coro<> held_up_at_every_check(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    bool stop = false;
    Task<> worker = create_task(swallowing_worker(&stop), "worker");
    co_await sleep(0s);
    worker.cancel();
    co_await sleep(0s);
    for (int i = 0; i < 6; ++i) {
        clock.advance(2s);  // each check comes a second late
        co_await sleep(0s);
        co_await sleep(0s);
    }
    stop = true;
    worker.cancel();
    try {
        co_await worker;
    } catch (const CancelledError&) {
    }
}

}  // namespace

// The clean-up's 1 ms timer and the check's are due in the same tick: the check finds the task
// about to run, and looks again once it has (it ends cancelled).
TEST(RunDebug, NoStillRunningReportForATaskWhoseCleanUpIsDueInTheChecksTick) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_then_hold_the_loop(&reports, [] { return cleans_up_then_rethrows(1ms); }, 1s));
    EXPECT_EQ(still_running_reports(reports, "task"), 0u) << all_messages(reports);
}

// The check comes a second late (the loop was held up), the clean-up's wait not over yet: not
// enough of the loop's time was given to it, and it gets another second.
TEST(RunDebug, NoStillRunningReportWhenTheLoopWasHeldUpPastTheCheck) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_then_hold_the_loop(&reports, cleans_up_until_an_event_set_later, 2s));
    EXPECT_EQ(still_running_reports(reports, "task"), 0u) << all_messages(reports);
}

// Those allowances do not hide a worker that swallows its cancellation: with its heartbeat due
// with each check, and with the loop held up past the check too.
TEST(RunDebug, AWorkerSwallowingItsCancelWithAOneSecondHeartbeatIsReported) {
    for (Clock::duration held_up : {Clock::duration(0s), Clock::duration(2s)}) {
        std::vector<ExceptionContext> reports;
        auto beats = std::make_shared<int>(0);
        corio::run(cancel_then_hold_the_loop(
            &reports, [beats] { return swallows_with_a_one_second_heartbeat(beats); }, held_up));
        EXPECT_EQ(still_running_reports(reports, "task"), 1u) << all_messages(reports);
    }
}

// A loop held up for good (here a clock advanced by hand past each grace) still gets its report.
TEST(RunDebug, ALoopHeldUpAtEveryCheckStillGetsTheReportInTheEnd) {
    std::vector<ExceptionContext> reports;
    corio::run(held_up_at_every_check(&reports));
    EXPECT_EQ(still_running_reports(reports, "worker"), 1u) << all_messages(reports);
}
