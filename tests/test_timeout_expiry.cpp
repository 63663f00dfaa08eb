// timeout / timeout_at, reschedule and expiry: reschedule() and the states that refuse it
// (TO7), a block that catches its own expiry (TO8), an expiry that passes through the ready
// queue of a late tick, a TaskGroup error that wins over the timeout (TO11), and entering
// outside a task (asyncio-rules.md 1.TO), ported from CPython's
// Lib/test/test_asyncio/test_timeouts.py. All time is virtual (MockClock) and asserted exactly.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "task_support.hpp"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

// ---------------------------------------------------------------------------------------------
// TO7: reschedule
// ---------------------------------------------------------------------------------------------

// test_timeouts.py::test_reschedule (earlier and later deadlines)
CORIO_TEST(Timeout, RescheduleEarlierOrLaterMovesTheExpiry) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    // Earlier: from 10 s to 2 s.
    std::string r1 = co_await outcome(timeout(10s, [&](Timeout& cm) -> Coro<> {
        co_await sleep(1s);
        cm.reschedule(get_running_loop().time() + 1s);
        EXPECT_EQ(cm.when(), std::optional<Clock::time_point>(t0 + 2s));
        co_await sleep(100s);
    }));
    EXPECT_EQ(r1, "TimeoutError");
    EXPECT_EQ(ms_since(t0), 2000.0);
    // Later: from 1 s to 5 s.
    auto t1 = get_running_loop().time();
    std::string r2 = co_await outcome(timeout(1s, [&](Timeout& cm) -> Coro<> {
        cm.reschedule(t1 + 5s);
        co_await sleep(100s);
    }));
    EXPECT_EQ(r2, "TimeoutError");
    EXPECT_EQ(ms_since(t1), 5000.0);
    // nullopt: no deadline any more.
    auto t2 = get_running_loop().time();
    int v = co_await timeout(1s, [&](Timeout& cm) -> Coro<int> {
        cm.reschedule(std::nullopt);
        EXPECT_FALSE(cm.when().has_value());
        co_await sleep(100s);
        co_return 4;
    });
    EXPECT_EQ(v, 4);
    EXPECT_EQ(ms_since(t2), 100000.0);
    // A deadline already past fires at the next await.
    auto t3 = get_running_loop().time();
    std::string r4 = co_await outcome(timeout(10s, [&](Timeout& cm) -> Coro<> {
        cm.reschedule(t3 - 1s);
        co_await sleep(100s);
    }));
    EXPECT_EQ(r4, "TimeoutError");
    EXPECT_EQ(ms_since(t3), 0.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<> publish_timeout(Clock::time_point deadline, Timeout** out, Log* log) {
    co_await timeout_at(deadline, [&](Timeout& cm) -> Coro<> {
        *out = &cm;
        try {
            co_await sleep(50s);
        } catch (const CancelledError&) {
            log->push_back(std::string("cancelled, expired=") + (cm.expired() ? "true" : "false"));
            *out = nullptr;
            throw;
        }
    });
}
}  // namespace

// test_timeouts.py::test_reschedule: from another task, then a plain cancel is a plain cancel.
CORIO_TEST(Timeout, RescheduleFromAnotherTask) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    auto deadline1 = t0 + 10s;
    auto deadline2 = deadline1 + 20s;
    Timeout* cm = nullptr;
    Log log;
    Task<> task = create_task(publish_timeout(deadline1, &cm, &log));
    while (!cm) co_await sleep(0s);
    EXPECT_EQ(cm->when(), std::optional<Clock::time_point>(deadline1));
    cm->reschedule(deadline2);
    EXPECT_EQ(cm->when(), std::optional<Clock::time_point>(deadline2));
    cm->reschedule(std::nullopt);
    EXPECT_FALSE(cm->when().has_value());
    co_await sleep(40s);  // past both old deadlines
    EXPECT_FALSE(task.done());
    task.cancel();
    std::string result = co_await outcome(task);
    EXPECT_EQ(result, "CancelledError");
    EXPECT_EQ(log, (Log{"cancelled, expired=false"}));
    EXPECT_EQ(ms_since(t0), 40000.0);
}

// test_timeouts.py::test_timeout_not_entered, test_timeout_expiring, test_timeout_expired,
// test_timeout_finished, test_timeout_double_enter: reschedule() and enter() in the wrong state.
CORIO_TEST(Timeout, RescheduleInWrongStatesThrowsLogicError) {
    corio::testing::MockClock clock;
    auto now = get_running_loop().time();
    auto message_of = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const std::logic_error& e) {
            return e.what();
        }
        return "no exception";
    };
    {
        Timeout t(now + 1s);
        EXPECT_EQ(message_of([&] { t.reschedule(now + 2s); }), "Timeout has not been entered");
    }
    // Expiring: inside the body, after the expiry's cancellation was delivered.
    std::string expiring;
    co_await timeout(1ms, [&](Timeout& cm) -> Coro<> {
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
        }
        expiring = message_of([&] { cm.reschedule(get_running_loop().time() + 2s); });
    });
    EXPECT_EQ(expiring, "Cannot change state of expiring Timeout");
    {
        // Expired: the scope's own enter/exit, as timeout_at() drives them.
        Timeout t(get_running_loop().time());
        t.enter();
        EXPECT_EQ(message_of([&] { t.enter(); }), "Timeout has already been entered");
        std::exception_ptr error;
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
            error = std::current_exception();
        }
        t.exit(error);
        EXPECT_EQ(shape(error), "TimeoutError");
        EXPECT_TRUE(t.expired());
        EXPECT_EQ(message_of([&] { t.reschedule(std::nullopt); }), "Cannot change state of expired Timeout");
    }
    {
        // Finished: exited without expiring.
        Timeout t(get_running_loop().time() + 1s);
        t.enter();
        std::exception_ptr error;
        t.exit(error);
        EXPECT_EQ(error, nullptr);
        EXPECT_FALSE(t.expired());
        EXPECT_EQ(message_of([&] { t.reschedule(std::nullopt); }), "Cannot change state of finished Timeout");
    }
    {
        // A foreign exception leaves expired() false after exit (test_foreign_exception_passed).
        Timeout t(get_running_loop().time() + 10ms);
        t.enter();
        std::exception_ptr error = std::make_exception_ptr(KeyError());
        t.exit(error);
        EXPECT_EQ(shape(error), "KeyError");
        EXPECT_FALSE(t.expired());
    }
    EXPECT_EQ(current_task().cancelling(), 0);
}

// ---------------------------------------------------------------------------------------------
// TO8, TO11
// ---------------------------------------------------------------------------------------------

// test_timeouts.py::test_timeout_expiring: the block catches the expiry's CancelledError and
// exits normally: no TimeoutError, expired() is true, and the count is restored.
CORIO_TEST(Timeout, BlockCatchingItsExpiryExitsNormally) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool expired = false, caught = false;
    int v = co_await timeout(10ms, [&](Timeout& cm) -> Coro<int> {
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
            caught = true;
        }
        expired = cm.expired();
        co_return 9;
    });
    EXPECT_EQ(v, 9);
    EXPECT_TRUE(caught);
    EXPECT_TRUE(expired);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // not cancelled again
    EXPECT_EQ(ms_since(t0), 1010.0);
}

namespace {
// These tests pin the order of one tick's ready queue, which CORIO_SHUFFLE_SEED randomises.
bool skipped_when_shuffled() {
    const char* seed = std::getenv("CORIO_SHUFFLE_SEED");
    if (!seed || !*seed) return false;
    []() { GTEST_SKIP() << "pins the ready queue's order, which the shuffle seed randomises"; }();
    return true;
}

Coro<int> await_under_timeout(Future<int> f, Clock::duration limit) {
    auto body = [f](Timeout&) mutable -> Coro<int> {
        int v = co_await f;
        co_return v;
    };
    Coro<int> scoped = timeout(limit, body);
    int v = co_await std::move(scoped);
    co_return v;
}
}  // namespace

// L2/L3: a deadline that passes while the loop is busy expires through the ready queue, behind
// what was ready first. The future completed (at 5 ms) before the deadline (10 ms) and the task
// was ready to take the result when the late loop saw both: the result wins, as in asyncio (the
// timeout used to cancel the task inline, before the ready queue ran: TimeoutError).
CORIO_TEST(Timeout, AResultReadyBeforeALateDeadlineIsTheOutcome) {
    if (skipped_when_shuffled()) co_return;
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Future<int> f = loop.create_future<int>();
    TimerHandle completes = loop.call_later(5ms, [f, &clock]() mutable {
        f.set_result(1);
        clock.advance(20ms);  // the loop is busy past the deadline
    });
    Coro<int> waiting = await_under_timeout(f, 10ms);
    std::string r = co_await outcome(std::move(waiting));
    EXPECT_EQ(r, "ok");
}

// L2/L3: a callback due before the deadline runs before the expiry that falls in the same late
// tick (the expiry used to cancel the future first, and the callback's set_result() threw).
CORIO_TEST(Timeout, ACallbackDueBeforeTheDeadlineRunsBeforeTheExpiry) {
    if (skipped_when_shuffled()) co_return;
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Future<int> f = loop.create_future<int>();
    std::string set_result_outcome = "not run";
    TimerHandle completes = loop.call_later(5ms, [f, &set_result_outcome]() mutable {
        try {
            f.set_result(2);
            set_result_outcome = "ok";
        } catch (const InvalidStateError&) {
            set_result_outcome = "InvalidStateError";
        }
    });
    Handle busy = loop.call_soon([&clock] { clock.advance(20ms); });
    Coro<int> waiting = await_under_timeout(f, 10ms);
    std::string r = co_await outcome(std::move(waiting));
    EXPECT_EQ(set_result_outcome, "ok");
    EXPECT_EQ(r, "TimeoutError");  // the expiry still cancels the task that had not resumed yet
}

// Rescheduling between the deadline and the expiry's turn takes the expiry back.
CORIO_TEST(Timeout, RescheduledBeforeItsDueExpiryRunsItDoesNotExpire) {
    if (skipped_when_shuffled()) co_return;
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Timeout* scope = nullptr;
    TimerHandle late = loop.call_later(5ms, [&clock] { clock.advance(20ms); });
    bool expired = true;
    Coro<> scoped = timeout(10ms, [&](Timeout& cm) -> Coro<> {
        scope = &cm;
        co_await sleep(15ms);  // due with the 10 ms deadline in the same late tick
        expired = cm.expired();
    });
    Task<> body = create_task(std::move(scoped));
    // Due in the late tick too, and set before the deadline: it runs before the queued expiry
    // (python3, the same program: "ok", expired() False).
    TimerHandle taking_back = loop.call_later(6ms, [&scope, &body] {
        if (scope && !body.done()) scope->reschedule(std::nullopt);
    });
    std::string r = co_await outcome(body);
    EXPECT_EQ(r, "ok");
    EXPECT_FALSE(expired);
}

namespace {
Coro<> crash_in_cleanup() {
    try {
        co_await sleep(2s);  // interrupted after 10 ms
    } catch (const CancelledError&) {
        throw ZeroDivisionError();  // crash in cleanup
    }
}
}  // namespace

// test_timeouts.py::test_timeout_taskgroup: the group's ExceptionGroup wins over TimeoutError.
CORIO_TEST(Timeout, TaskGroupErrorWinsOverTimeout) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string result = co_await outcome(timeout(10ms, [&](Timeout&) -> Coro<> {
        co_await task_group([&](TaskGroup& tg) -> Coro<> {
            tg.create_task(crash_in_cleanup());
            std::exception_ptr value_error;
            try {
                throw std::invalid_argument("ValueError");
            } catch (...) {
                value_error = std::current_exception();
            }
            co_await sleep(1s);  // `finally: await sleep(1)`: the timeout fires here
            std::rethrow_exception(value_error);
        });
    }));
    EXPECT_EQ(result, "EG[ZeroDivisionError]");
    EXPECT_EQ(ms_since(t0), 10.0);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // no cancellation left pending
    EXPECT_EQ(ms_since(t0), 1010.0);
}

// TO3: entering outside a task throws.
TEST(TimeoutOutsideTask, EnterOutsideATaskThrowsLogicError) {
    // test_timeouts.py::test_timeout_without_task
    Timeout t(std::nullopt);
    EXPECT_THROW(t.enter(), std::logic_error);
}

// ---------------------------------------------------------------------------------------------
// Ties: a timeout and a sleep due at the same time act in the order their timers were set, as
// in asyncio, where both take one tick from the timer to the task (the timer's handle sets a
// future or cancels the task, and the task runs in the next tick). A sleep used to wake its
// task straight from the timer, a tick ahead of any timeout.
// ---------------------------------------------------------------------------------------------

namespace {

// Enters timeout(1s) around a 10 s sleep and logs the TimeoutError.
Coro<> times_out_after_a_second(Log* log) {
    try {
        co_await timeout(1s, [](Timeout&) -> Coro<> { co_await sleep(10s); });
    } catch (const TimeoutError&) {
        log->push_back("A timed out");
    }
}

Coro<> wakes_after_a_second(Log* log) {
    co_await sleep(1s);
    log->push_back("B woke");
}

Coro<> body_with_an_inner_timeout(TaskGroup& tg) {
    tg.create_task(fail_after(1s, "child"));
    co_await timeout(1s, [](Timeout&) -> Coro<> { co_await sleep(10s); });
}

}  // namespace

// python3 (a loop whose clock jumps to the next timer): ['A timeout', 'B woke'].
CORIO_TEST(TimeoutTie, ATimeoutSetBeforeASleepOfTheSameDeadlineActsFirst) {
    corio::testing::MockClock clock;
    Log log;
    Task<> a = create_task(times_out_after_a_second(&log));
    auto entered = sleep(0s);  // A is inside its timeout: its timer was set first
    co_await std::move(entered);
    Task<> b = create_task(wakes_after_a_second(&log));
    co_await a;
    co_await b;
    EXPECT_EQ(log, (Log{"A timed out", "B woke"}));
}

// The body's timeout (set before the child's sleep) and a child failing at the same deadline:
// CPython 3.11-3.13 give EG[TimeoutError], the child cancelled by the group's abort before it
// resumes (corio gave EG[child, TimeoutError]).
CORIO_TEST(TimeoutTie, AnInnerTimeoutAndAChildFailingAtTheSameDeadline) {
    corio::testing::MockClock clock;
    Coro<> group = task_group(body_with_an_inner_timeout);
    std::string r = co_await outcome(std::move(group));
    EXPECT_EQ(r, "EG[TimeoutError]");
}
