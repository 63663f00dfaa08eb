// Debug mode's report of a task still running a second after its CancelledError (D4, tested in
// test_debug_mode.cpp) must not fire when the loop itself was held up: the task's clean-up,
// due long before, had no turn yet. (A shutdown of 1,000 tasks on a loaded machine reported
// tasks whose 1 ms clean-up sleep was due in the same tick as the check.)
#include <corio/testing.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "core_support.hpp"

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::capture_reports;

namespace {

std::size_t still_running_reports(const std::vector<ExceptionContext>& reports) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("is still running") != std::string::npos) ++n;
    return n;
}

// asyncio's graceful shutdown: a short clean-up that awaits, then the cancellation goes on.
Coro<> cleans_up_for_a_millisecond() {
    bool cancelled = false;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await sleep(1ms);
        throw CancelledError();
    }
}

Coro<> cancel_then_hold_the_loop(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<> honest = create_task(cleans_up_for_a_millisecond(), "honest");
    co_await sleep(0s);
    honest.cancel();
    co_await sleep(0s);  // the CancelledError is thrown into it: the check is armed, the clean-up sleeps
    // The loop is held up for two seconds (a step that blocked, an overloaded machine): the
    // clean-up's timer and the check's are both due at the next tick.
    clock.advance(2s);
    try {
        co_await honest;
    } catch (const CancelledError&) {
    }
    co_await sleep(3s);  // virtual time: a check re-armed would have fired by now
}

}  // namespace

TEST(RunDebug, NoStillRunningReportForATaskWhoseCleanUpTheHeldUpLoopHadNotRunYet) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_then_hold_the_loop(&reports));
    EXPECT_EQ(still_running_reports(reports), 0u) << all_messages(reports);
}
