// wait_for: asyncio's rules (asyncio-rules.md WF1-WF8), ported from CPython's
// Lib/test/test_asyncio/test_waitfor.py. All time is virtual (MockClock) and asserted exactly.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "task_support.hpp"

#include <array>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

struct FooException : std::runtime_error {
    FooException() : std::runtime_error("FooException") {}
};

// Runs `f` when destroyed: the C++ spelling of `finally:` for "cleanup ran" checks.
struct Finally {
    std::function<void()> f;
    ~Finally() { f(); }
};

// Sleeps; when cancelled, spends `cleanup` awaiting, logs, and re-raises. A destructor logs too.
Coro<int> slow_to_cancel(Clock::duration d, Clock::duration cleanup, Log* log, Clock::time_point t0) {
    Finally fin{[log, t0] { log->push_back("finally" + at(t0)); }};
    std::exception_ptr cancelled;
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        log->push_back("inner-cancelled" + at(t0));
        co_await sleep(cleanup);
        std::rethrow_exception(cancelled);
    }
    co_return 1;
}

// Turns debug mode on and collects what reaches the exception handler; restores both.
class ReportCapture {
public:
    explicit ReportCapture(EventLoop& loop)
        : loop_(loop), previous_(loop.get_exception_handler()), debug_(loop.get_debug()),
          slow_(loop.slow_callback_duration) {
        loop.set_debug(true);
        loop.slow_callback_duration = std::chrono::hours(1);
        loop.set_exception_handler([this](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    }
    ~ReportCapture() {
        loop_.set_exception_handler(previous_);
        loop_.set_debug(debug_);
        loop_.slow_callback_duration = slow_;
    }
    std::vector<std::string> reports;

private:
    EventLoop& loop_;
    EventLoop::ExceptionHandler previous_;
    bool debug_;
    std::chrono::nanoseconds slow_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// wait_for: WF1-WF8
// ---------------------------------------------------------------------------------------------

namespace {
Coro<std::string> done_coro() { co_return "done"; }
}  // namespace

// test_waitfor.py::test_wait_for_blocking (WF1: no timeout is a plain await)
CORIO_TEST(WaitFor, NulloptIsAPlainAwait) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string r = co_await wait_for(done_coro(), std::nullopt);
    EXPECT_EQ(r, "done");
    int v = co_await wait_for(value_after(100s, 3), std::nullopt);
    EXPECT_EQ(v, 3);
    Task<int> t = create_task(value_after(50s, 4));
    int w = co_await wait_for(t, std::nullopt);
    EXPECT_EQ(w, 4);
    EXPECT_EQ(ms_since(t0), 150000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<std::string> foo_running_flag(bool* running) {
    *running = true;
    Finally fin{[running] { *running = false; }};
    co_await sleep(10s);
    co_return "done";
}
}  // namespace

// test_waitfor.py::test_wait_for (WF2): the inner task is cancelled and done when TimeoutError arrives.
CORIO_TEST(WaitFor, ExpiryCancelsTheInnerTask) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool foo_running = false;
    Task<std::string> fut = create_task(foo_running_flag(&foo_running));
    std::string r = co_await outcome(wait_for(fut, 100ms));
    EXPECT_EQ(r, "TimeoutError");
    EXPECT_TRUE(fut.done());
    EXPECT_TRUE(fut.cancelled());
    EXPECT_FALSE(foo_running);
    EXPECT_EQ(ms_since(t0), 100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_waitfor.py::test_wait_for_waits_for_task_cancellation (WF2): TimeoutError only after
// the inner has finished cancelling (its cleanup awaits 1 s), for a Task and for a Coro.
CORIO_TEST(WaitFor, WaitsForTheInnerToFinishCancelling) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<int> inner = create_task(slow_to_cancel(10s, 1s, &log, t0));
    std::string r = co_await outcome(wait_for(inner, 100ms));
    log.push_back(r + at(t0));
    EXPECT_EQ(log, (Log{"inner-cancelled@100", "finally@1100", "TimeoutError@1100"}));
    EXPECT_TRUE(inner.cancelled());

    log.clear();
    auto t1 = get_running_loop().time();
    std::string r2 = co_await outcome(wait_for(slow_to_cancel(10s, 1s, &log, t1), 100ms));
    log.push_back(r2 + at(t1));
    EXPECT_EQ(log, (Log{"inner-cancelled@100", "finally@1100", "TimeoutError@1100"}));
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<int> return_42() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        co_return 42;
    }
    co_return 0;
}
Coro<int> foo_reraises() {
    try {
        co_await sleep(200ms);
    } catch (const CancelledError&) {
        throw FooException();
    }
    co_return 0;
}
}  // namespace

// test_waitfor.py::test_wait_for_cancel_suppressed (WF3): the inner swallows the cancel and returns.
CORIO_TEST(WaitFor, InnerSwallowingTheCancelReturnsItsValue) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    int r = co_await wait_for(return_42(), 100ms);
    EXPECT_EQ(r, 42);
    EXPECT_EQ(ms_since(t0), 100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
    Task<int> t = create_task(return_42());
    int r2 = co_await wait_for(t, 100ms);
    EXPECT_EQ(r2, 42);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(ms_since(t0), 200.0);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // nothing left pending
    EXPECT_EQ(ms_since(t0), 1200.0);
}

// test_waitfor.py::test_wait_for_reraises_exception_during_cancellation (WF3)
CORIO_TEST(WaitFor, ExceptionRaisedWhileCancellingPropagates) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string r = co_await outcome(wait_for(foo_reraises(), 100ms));
    EXPECT_EQ(r, "FooException");
    Task<int> t = create_task(foo_reraises());
    std::string r2 = co_await outcome(wait_for(t, 100ms));
    EXPECT_EQ(r2, "FooException");
    EXPECT_EQ(ms_since(t0), 200.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_waitfor.py::test_wait_for_timeout_less_then_0_or_0_future_done (WF4)
CORIO_TEST(WaitFor, ZeroOrNegativeTimeoutWithDoneTaskReturnsItsResult) {
    corio::testing::MockClock clock;
    Task<std::string> t0 = create_task(done_coro());
    Task<std::string> t1 = create_task(done_coro());
    co_await sleep(0s);
    CO_ASSERT_TRUE(t0.done() && t1.done());
    std::string r0 = co_await wait_for(t0, 0s);
    EXPECT_EQ(r0, "done");
    std::string r1 = co_await wait_for(t1, -1s);
    EXPECT_EQ(r1, "done");
    Future<std::string> fut = get_running_loop().create_future<std::string>();
    fut.set_result("done");
    std::string r2 = co_await wait_for(fut, 0s);
    EXPECT_EQ(r2, "done");
}

// asyncio: awaiting a task (through wait_for or not) leaves its result in place for every
// other handle (test_waitfor.py::test_wait_for_timeout_less_then_0_or_0_future_done then
// `fut.result()`).
CORIO_TEST(WaitFor, LeavesTheTaskResultInPlace) {
    corio::testing::MockClock clock;
    Task<std::string> t = create_task(done_coro());
    co_await sleep(0s);
    std::string a = co_await wait_for(t, 0s);
    std::string b = co_await wait_for(t, -1s);
    std::string c = co_await wait_for(t, 1s);
    std::string d = co_await wait_for(t, std::nullopt);
    EXPECT_EQ(a, "done");
    EXPECT_EQ(b, "done");
    EXPECT_EQ(c, "done");
    EXPECT_EQ(d, "done");
    EXPECT_EQ(t.result(), "done");
    std::string e = co_await t;
    EXPECT_EQ(e, "done");
}

// test_waitfor.py::test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started (WF4)
CORIO_TEST(WaitFor, ZeroOrNegativeTimeoutNeverStartsACoro) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    ReportCapture reports(get_running_loop());
    const std::array<Clock::duration, 2> limits{Clock::duration(0s), Clock::duration(-1s)};
    for (Clock::duration limit : limits) {
        bool foo_started = false;
        auto foo = [&]() -> Coro<int> {
            foo_started = true;
            co_return 1;
        };
        std::string r = co_await outcome(wait_for(foo(), limit));
        EXPECT_EQ(r, "TimeoutError");
        EXPECT_FALSE(foo_started);
    }
    EXPECT_TRUE(reports.reports.empty()) << "a coroutine wait_for never starts is closed, not 'never awaited'";
    EXPECT_EQ(ms_since(t0), 0.0);
}

namespace {
Coro<> raise_flag(bool* flag) {
    *flag = true;
    co_return;
}
}  // namespace

// WF4: wait_for(coro, 0) never starts the coroutine, but it suspends once, as asyncio's does
// (it cancels the coroutine's task and waits for it): a polling loop lets the other tasks run,
// and a cancellation already requested comes out as CancelledError, not TimeoutError.
CORIO_TEST(WaitFor, ZeroTimeoutOnACoroStillYieldsOnce) {
    corio::testing::MockClock clock;
    bool flag = false;
    Task<> setter = create_task(raise_flag(&flag));
    int polls = 0;
    while (!flag && polls < 10) {
        ++polls;
        try {
            Coro<int> check = value_after(0s, 1);
            auto polled = wait_for(std::move(check), 0s);
            (void)co_await std::move(polled);
        } catch (const TimeoutError&) {
        }
    }
    EXPECT_TRUE(flag);
    EXPECT_EQ(polls, 1);
    co_await setter;

    current_task().cancel();
    std::string r = co_await outcome(wait_for(value_after(0s, 1), 0s));
    EXPECT_EQ(r, "CancelledError");
    EXPECT_EQ(current_task().uncancel(), 0);
}

// test_waitfor.py::test_wait_for_waits_for_task_cancellation_w_timeout_0,
// test_wait_for_timeout_less_then_0_or_0 (WF4): a pending task is cancelled and awaited.
CORIO_TEST(WaitFor, ZeroTimeoutCancelsAPendingTaskAndWaitsForIt) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<int> inner = create_task(slow_to_cancel(10s, 1s, &log, t0));
    co_await sleep(100ms);
    std::string r = co_await outcome(wait_for(inner, 0s));
    log.push_back(r + at(t0));
    EXPECT_EQ(log, (Log{"inner-cancelled@100", "finally@1100", "TimeoutError@1100"}));
    EXPECT_TRUE(inner.cancelled());

    // A task that never started is cancelled before its first step: its body never runs.
    bool started = false;
    auto body = [&]() -> Coro<int> {
        started = true;
        co_return 1;
    };
    Task<int> fresh = create_task(body());
    std::string r2 = co_await outcome(wait_for(fresh, 0s));
    EXPECT_EQ(r2, "TimeoutError");
    EXPECT_FALSE(started);
    EXPECT_TRUE(fresh.cancelled());

    // A task that swallows the cancel and returns: that value wins.
    Task<int> swallower = create_task(return_42());
    co_await sleep(0s);
    int v = co_await wait_for(swallower, -1s);
    EXPECT_EQ(v, 42);

    // A pending Future is cancelled.
    Future<int> fut = get_running_loop().create_future<int>();
    std::string r3 = co_await outcome(wait_for(fut, 0s));
    EXPECT_EQ(r3, "TimeoutError");
    EXPECT_TRUE(fut.cancelled());
    EXPECT_EQ(ms_since(t0), 1100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<> blocking_coroutine(Future<int> fut, Log* log) {
    try {
        co_await fut;  // never set
    } catch (const CancelledError&) {
        log->push_back("inner cancelled");
        throw;
    }
}
Coro<> wait_for_task(Task<> inner, std::optional<Clock::duration> limit) {
    co_await wait_for(inner, limit);
}
}  // namespace

namespace {
// Swallows its cancellation, cleans up for a while, then returns 7.
Coro<int> swallows_then_7(Clock::duration cleanup) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
        current_task().uncancel();
    }
    co_await sleep(cleanup);
    co_return 7;
}
Coro<int> wait_zero(Task<int> inner) {
    int v = co_await wait_for(inner, 0s);
    co_return v;
}
}  // namespace

// WF5/P4: wait_for(task, 0) cancels the task and waits for it; the caller's own cancellation,
// which comes meanwhile, is raised, not absorbed (the caller used to get the inner's 7).
CORIO_TEST(WaitFor, ZeroTimeoutRaisesTheCallersOwnCancellation) {
    corio::testing::MockClock clock;
    Task<int> inner = create_task(swallows_then_7(50ms));
    co_await sleep(0s);
    Task<int> caller = create_task(wait_zero(inner));
    co_await sleep(10ms);
    EXPECT_FALSE(caller.done());
    caller.cancel();
    std::string r = co_await outcome(caller);
    EXPECT_EQ(r, "CancelledError");
    EXPECT_TRUE(caller.cancelled());
    EXPECT_TRUE(inner.done());  // waited for, as asyncio's wait_for does not leave it behind
}

// test_waitfor.py::test_cancel_wait_for, test_cancel_blocking_wait_for (WF5, bpo-23219)
CORIO_TEST(WaitFor, CancellingTheWaiterCancelsTheInner) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    const std::array<std::optional<Clock::duration>, 2> limits{std::nullopt, Clock::duration(1h)};
    for (std::optional<Clock::duration> limit : limits) {
        Log log;
        Future<int> fut = get_running_loop().create_future<int>();
        Task<> task = create_task(blocking_coroutine(fut, &log));
        Task<> wait = create_task(wait_for_task(task, limit));
        co_await sleep(10ms);
        wait.cancel();
        std::string r = co_await outcome(wait);
        EXPECT_EQ(r, "CancelledError");
        EXPECT_TRUE(task.cancelled());
        EXPECT_TRUE(fut.cancelled());
        EXPECT_EQ(log, (Log{"inner cancelled"}));
    }
    EXPECT_EQ(ms_since(t0), 20.0);
}

namespace {
Coro<std::string> inner_86296() {
    co_await sleep(0s);
    co_return "done";
}
Coro<> wait_for_coro_86296(Task<std::string> inner, bool* reached_end) {
    co_await wait_for(inner, 100s);
    co_await sleep(1s);
    *reached_end = true;
}
}  // namespace

// test_waitfor.py::test_wait_for_issue86296 (WF6): the inner completes, then the outer task is
// cancelled before it resumes: the cancellation is not swallowed.
CORIO_TEST(WaitFor, CancelRacingInnerCompletionIsNotSwallowed) {
    corio::testing::MockClock clock;
    bool reached_end = false;
    // The inner yields once, so that the waiter is suspended on it before it completes.
    Task<std::string> inner_task = create_task(inner_86296());
    Task<> task = create_task(wait_for_coro_86296(inner_task, &reached_end));
    EXPECT_FALSE(task.done());
    while (!inner_task.done()) co_await sleep(0s);
    EXPECT_FALSE(task.done());
    task.cancel();
    std::string r = co_await outcome(task);
    EXPECT_EQ(r, "CancelledError");
    EXPECT_TRUE(task.cancelled());
    EXPECT_TRUE(inner_task.done());
    std::string v = co_await inner_task;
    EXPECT_EQ(v, "done");
    EXPECT_FALSE(reached_end);
}

// test_waitfor.py::test_wait_for_race_condition (WF7): a result landing before the deadline wins.
CORIO_TEST(WaitFor, ResultLandingBeforeTheDeadlineIsReturned) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Future<std::string> fut = get_running_loop().create_future<std::string>();
    get_running_loop().call_later(100ms, [fut]() mutable { fut.set_result("ok"); });
    std::string r = co_await wait_for(fut, 200ms);
    EXPECT_EQ(r, "ok");
    EXPECT_EQ(ms_since(t0), 100.0);
    // Any awaitable, not only Coros, Tasks and Futures: a sleep.
    std::string r2 = co_await outcome(wait_for(sleep(10s), 1s));
    EXPECT_EQ(r2, "TimeoutError");
    EXPECT_EQ(ms_since(t0), 1100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_waitfor.py::WaitForShieldTests (WF8): the shield is cancelled, the task keeps running.
CORIO_TEST(WaitFor, ShieldedTaskKeepsRunning) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    // test_none_timeout
    Task<int> t1 = create_task(value_after(100ms, 1));
    int v1 = co_await wait_for(shield(t1), std::nullopt);
    EXPECT_EQ(v1, 1);
    EXPECT_TRUE(t1.done());
    // test_shielded_timeout
    Task<int> t2 = create_task(value_after(100ms, 2));
    std::string r2 = co_await outcome(wait_for(shield(t2), 10ms));
    EXPECT_EQ(r2, "TimeoutError");
    EXPECT_FALSE(t2.done());
    EXPECT_FALSE(t2.cancelled());
    int v2 = co_await t2;
    EXPECT_EQ(v2, 2);
    EXPECT_EQ(ms_since(t0), 200.0);
    // test_zero_timeout
    Task<int> t3 = create_task(value_after(1s, 3));
    std::string r3 = co_await outcome(wait_for(shield(t3), 0s));
    EXPECT_EQ(r3, "TimeoutError");
    EXPECT_FALSE(t3.done());
    int v3 = co_await t3;
    EXPECT_EQ(v3, 3);
    EXPECT_EQ(ms_since(t0), 1200.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}
