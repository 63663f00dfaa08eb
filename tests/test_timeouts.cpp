// timeout / timeout_at / wait_for: asyncio's rules (asyncio-rules.md 1.TO and WF1-WF8), ported
// from CPython's Lib/test/test_asyncio/test_timeouts.py and test_waitfor.py. All time is
// virtual (MockClock) and asserted exactly.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <array>
#include <chrono>
#include <cstdlib>
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

using Log = std::vector<std::string>;

struct KeyError : std::runtime_error {
    KeyError() : std::runtime_error("KeyError") {}
};
struct FooException : std::runtime_error {
    FooException() : std::runtime_error("FooException") {}
};
struct ZeroDivisionError : std::runtime_error {
    ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};

std::string shape(const std::exception_ptr& e) {
    if (!e) return "none";
    try {
        std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
        std::string s = "EG[";
        for (std::size_t i = 0; i < g.exceptions().size(); ++i) {
            if (i) s += ',';
            s += shape(g.exceptions()[i]);
        }
        return s + "]";
    } catch (const CancelledError&) {
        return "CancelledError";
    } catch (const TimeoutError&) {
        return "TimeoutError";
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown";
    }
}

// Awaits `aw` (moved in) and says how it ended: "ok" or the shape of what it threw.
template <class A>
Coro<std::string> outcome(A aw) {
    std::string out = "ok";
    try {
        co_await std::move(aw);
    } catch (...) {
        out = shape(std::current_exception());
    }
    co_return out;
}

std::string at(Clock::time_point t0) {
    std::string s = "@";  // not `"@" + std::to_string(...)`: g++ 12 -Wrestrict false positive
    s += std::to_string(int(ms_since(t0)));
    return s;
}

// Runs `f` when destroyed: the C++ spelling of `finally:` for "cleanup ran" checks.
struct Finally {
    std::function<void()> f;
    ~Finally() { f(); }
};

Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}

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
// TO1-TO4: basics
// ---------------------------------------------------------------------------------------------

// test_timeouts.py::test_timeout_basic, test_waiter_cancelled
CORIO_TEST(Timeout, ExpiryRaisesTimeoutErrorAtTheDeadline) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = co_await outcome(timeout(10ms, [&](Timeout& cm) -> Coro<> {
        EXPECT_EQ(cm.when(), std::optional<Clock::time_point>(t0 + 10ms));
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            // The body sees the CancelledError first; the scope turns it into TimeoutError.
            log.push_back(std::string("body:CancelledError") + at(t0) + (cm.expired() ? ":expired" : ""));
            throw;
        }
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"body:CancelledError@10:expired"}));
    EXPECT_EQ(ms_since(t0), 10.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_timeout_at_basic
CORIO_TEST(Timeout, TimeoutAtUsesTheAbsoluteDeadline) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    auto deadline = t0 + 10ms;
    std::optional<Clock::time_point> seen;
    std::string result = co_await outcome(timeout_at(deadline, [&](Timeout& cm) -> Coro<> {
        seen = cm.when();
        co_await sleep(10s);
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(seen, std::optional<Clock::time_point>(deadline));
    EXPECT_EQ(ms_since(t0), 10.0);
}

namespace {
Coro<> sleeps_for_ever() {
    auto never = sleep(Clock::duration::max());
    co_await never;
}
}  // namespace

// TO1 / WF1: Clock::duration::max() is "no limit" (asyncio's math.inf). Added to the loop's time
// it overflowed into a deadline in the past: timeout() expired at once, wait() returned with the
// tasks pending, sleep() returned at once (and, in real time, left the loop blocked in epoll).
CORIO_TEST(Timeout, MaxDurationIsNoLimit) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    int v = co_await timeout(Clock::duration::max(), [](Timeout&) -> Coro<int> {
        co_await sleep(10s);
        co_return 42;
    });
    EXPECT_EQ(v, 42);
    Task<int> five = create_task(value_after(5s, 5));
    std::vector<Task<int>> one{five};
    auto waiting = wait(one, Clock::duration::max());
    WaitResult<int> waited = co_await std::move(waiting);
    EXPECT_EQ(waited.done.size(), 1u);
    Coro<int> inner = value_after(1s, 1);
    auto limited = wait_for(std::move(inner), Clock::duration::max());
    int w = co_await std::move(limited);
    EXPECT_EQ(w, 1);
    Task<> forever = create_task(sleeps_for_ever());
    co_await sleep(10ms);  // a sleeper without end holds no other timer up
    EXPECT_FALSE(forever.done());
    forever.cancel();
    std::string r = co_await outcome(forever);
    EXPECT_EQ(r, "CancelledError");
    EXPECT_EQ(ms_since(t0), 16010.0);
}

// test_timeouts.py::test_timeout_disabled, test_timeout_at_disabled
CORIO_TEST(Timeout, NulloptDisablesTheTimeout) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool seen_nullopt = false, seen_expired = true;
    int v = co_await timeout(std::nullopt, [&](Timeout& cm) -> Coro<int> {
        seen_nullopt = !cm.when().has_value();
        co_await sleep(10s);
        seen_expired = cm.expired();
        co_return 7;
    });
    EXPECT_EQ(v, 7);
    EXPECT_TRUE(seen_nullopt);
    EXPECT_FALSE(seen_expired);
    int w = co_await timeout_at(std::nullopt, [&](Timeout& cm) -> Coro<int> {
        EXPECT_FALSE(cm.when().has_value());
        co_await sleep(10s);
        co_return 8;
    });
    EXPECT_EQ(w, 8);
    EXPECT_EQ(ms_since(t0), 20000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_timeout_not_called
CORIO_TEST(Timeout, UnexpiredTimeoutLeavesNothingBehind) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool expired = true;
    int v = co_await timeout(10s, [&](Timeout& cm) -> Coro<int> {
        co_await sleep(10ms);
        expired = cm.expired();
        co_return 3;
    });
    EXPECT_EQ(v, 3);
    EXPECT_FALSE(expired);
    EXPECT_EQ(ms_since(t0), 10.0);
    // The timer was removed on exit: a long sleep past the old deadline is not cancelled.
    co_await sleep(20s);
    EXPECT_EQ(ms_since(t0), 20010.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_timeout_zero, test_timeout_zero_sleep_zero, test_timeout_in_the_past_sleep_zero
CORIO_TEST(Timeout, ZeroOrPastDeadlineExpiresAtTheFirstAwait) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string r1 = co_await outcome(timeout(0s, [&](Timeout&) -> Coro<> { co_await sleep(10s); }));
    EXPECT_EQ(r1, "TimeoutError");
    std::string r2 = co_await outcome(timeout(0s, [&](Timeout&) -> Coro<> { co_await sleep(0s); }));
    EXPECT_EQ(r2, "TimeoutError");
    std::string r3 = co_await outcome(timeout(-11s, [&](Timeout&) -> Coro<> { co_await sleep(0s); }));
    EXPECT_EQ(r3, "TimeoutError");
    auto past = get_running_loop().time() - 11s;
    std::string r4 = co_await outcome(timeout_at(past, [&](Timeout&) -> Coro<> { co_await sleep(0s); }));
    EXPECT_EQ(r4, "TimeoutError");
    EXPECT_EQ(ms_since(t0), 0.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// TO9 (timeouts.py source): expiry takes effect only at a suspension point.
CORIO_TEST(Timeout, ZeroTimeoutWithoutAwaitExitsNormally) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool expired = true;
    int v = co_await timeout(0s, [&](Timeout& cm) -> Coro<int> {
        expired = cm.expired();
        co_return 5;
    });
    EXPECT_EQ(v, 5);
    EXPECT_FALSE(expired);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(0s);  // the expiry was dropped on exit: nothing cancels this
    co_await sleep(1s);
    EXPECT_EQ(ms_since(t0), 1000.0);
}

// test_timeouts.py::test_outer_task_is_not_cancelled
CORIO_TEST(Timeout, OuterTaskIsNotLeftCancelled) {
    corio::testing::MockClock clock;
    auto outer = [&]() -> Coro<int> {
        std::string r = co_await outcome(timeout(1ms, [&](Timeout&) -> Coro<> { co_await sleep(10s); }));
        EXPECT_EQ(r, "TimeoutError");
        EXPECT_EQ(current_task().cancelling(), 0);
        co_await sleep(1s);  // not cancelled again
        co_return 1;
    };
    Task<int> task = create_task(outer());
    int v = co_await task;
    EXPECT_EQ(v, 1);
    EXPECT_TRUE(task.done());
    EXPECT_FALSE(task.cancelled());
    EXPECT_EQ(task.cancelling(), 0);
}

// test_timeouts.py::test_waiter_cancelled: the body catches the CancelledError and may await
// while cleaning up (cancellation is edge-triggered); TimeoutError comes after the cleanup.
CORIO_TEST(Timeout, BodyMayAwaitWhileCleaningUpAfterExpiry) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = co_await outcome(timeout(100ms, [&](Timeout&) -> Coro<> {
        std::exception_ptr cancelled;
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            cancelled = std::current_exception();
        }
        log.push_back("cleanup-start" + at(t0));
        co_await sleep(1s);
        log.push_back("cleanup-end" + at(t0));
        if (cancelled) std::rethrow_exception(cancelled);
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"cleanup-start@100", "cleanup-end@1100"}));
    EXPECT_EQ(ms_since(t0), 1100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// ---------------------------------------------------------------------------------------------
// TO5, TO6: only the timeout that caused the cancellation converts it
// ---------------------------------------------------------------------------------------------

// test_timeouts.py::test_foreign_cancel_doesnt_timeout_if_not_expired
CORIO_TEST(Timeout, ForeignCancelInsideUnexpiredTimeoutStaysCancelledError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto body = [&]() -> Coro<> {
        co_await timeout(10s, [&](Timeout& cm) -> Coro<> {
            try {
                co_await sleep(20s);
            } catch (const CancelledError& e) {
                log.push_back(std::string("cancelled:") + e.what() + (cm.expired() ? ":expired" : ":not-expired"));
                throw;
            }
        });
    };
    Task<> task = create_task(body());
    co_await sleep(1s);
    task.cancel("foreign");
    std::string result;
    try {
        co_await task;
        result = "ok";
    } catch (const CancelledError& e) {
        result = std::string("CancelledError:") + e.what();
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "CancelledError:foreign");
    EXPECT_EQ(log, (Log{"cancelled:foreign:not-expired"}));
    EXPECT_TRUE(task.cancelled());
    EXPECT_EQ(ms_since(t0), 1000.0);
}

// test_timeouts.py::test_cancel_in_timeout_after_cancellation
CORIO_TEST(Timeout, CancelInsideTimeoutAfterAnEarlierCancellation) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    AnyTask me = current_task();
    bool first = false;
    try {
        me.cancel();
        co_await sleep(1s);  // work which will be cancelled
    } catch (const CancelledError&) {
        first = true;
    }
    EXPECT_TRUE(first);
    EXPECT_EQ(me.cancelling(), 1);
    // `finally:` a timeout(0) whose body is cancelled again from inside: not a timeout. As in
    // asyncio, the pending cancel is delivered on the next tick, after the expiry due now has
    // run (so the scope has expired), yet the task's own requests outnumber the scope's.
    std::string result = co_await outcome(timeout(0s, [&](Timeout& cm) -> Coro<> {
        me.cancel();
        try {
            co_await sleep(2s);  // some cleanup
        } catch (const CancelledError&) {
            EXPECT_TRUE(cm.expired());
            throw;
        }
    }));
    EXPECT_EQ(result, "CancelledError");
    EXPECT_EQ(me.cancelling(), 2);
    me.uncancel();
    me.uncancel();
    EXPECT_EQ(ms_since(t0), 0.0);
}

// test_timeouts.py::test_timeout_after_cancellation (gh-102780): a timeout used in the
// `except CancelledError` path, with the earlier request never uncancelled, still fires.
CORIO_TEST(Timeout, TimeoutInsideCancelledErrorPathStillFires) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    AnyTask me = current_task();
    bool handling = false;
    try {
        me.cancel();
        co_await sleep(1s);
    } catch (const CancelledError&) {
        handling = true;  // no co_await in a handler: the cleanup follows below
    }
    CO_ASSERT_TRUE(handling);
    EXPECT_EQ(me.cancelling(), 1);
    std::string result = co_await outcome(timeout(0s, [&](Timeout&) -> Coro<> {
        co_await sleep(1s);  // some cleanup
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(me.cancelling(), 1);  // back to the level at entry
    me.uncancel();
    EXPECT_EQ(ms_since(t0), 0.0);
}

// test_timeouts.py::test_foreign_exception_passed
CORIO_TEST(Timeout, ForeignExceptionPassesThrough) {
    corio::testing::MockClock clock;
    bool expired = true;
    std::string result = co_await outcome(timeout(10ms, [&](Timeout& cm) -> Coro<> {
        expired = cm.expired();
        throw KeyError();
        co_return;
    }));
    EXPECT_EQ(result, "KeyError");
    EXPECT_FALSE(expired);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_foreign_exception_on_timeout (without TO10's chaining): a body that
// turns the expiry's CancelledError into another exception raises that exception.
CORIO_TEST(Timeout, ForeignExceptionAfterExpiryPassesThrough) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool expired = false;
    std::string result = co_await outcome(timeout(10ms, [&](Timeout& cm) -> Coro<> {
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
            expired = cm.expired();
            throw KeyError();
        }
    }));
    EXPECT_EQ(result, "KeyError");
    EXPECT_TRUE(expired);
    EXPECT_EQ(ms_since(t0), 10.0);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // nothing left pending
    EXPECT_EQ(ms_since(t0), 1010.0);
}

// test_timeouts.py::test_nested_timeouts: both expire at the same deadline; the inner one
// re-raises CancelledError, only the outermost raises TimeoutError; both report expired().
CORIO_TEST(Timeout, NestedTimeoutsSameDeadlineOnlyOuterRaises) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    auto deadline = t0 + 10ms;
    Log log;
    std::string result = co_await outcome(timeout_at(deadline, [&](Timeout& cm1) -> Coro<> {
        try {
            co_await timeout_at(deadline, [&](Timeout& cm2) -> Coro<> {
                try {
                    co_await sleep(10s);
                } catch (const CancelledError&) {
                    log.push_back(std::string("inner-body:") + (cm1.expired() ? "cm1" : "-") +
                                  (cm2.expired() ? "cm2" : "-"));
                    throw;
                }
            });
            log.push_back("inner scope exited normally");
        } catch (const CancelledError&) {
            log.push_back("inner scope raised CancelledError");
            throw;
        } catch (const TimeoutError&) {
            log.push_back("inner scope raised TimeoutError");
            throw;
        }
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"inner-body:cm1cm2", "inner scope raised CancelledError"}));
    EXPECT_EQ(ms_since(t0), 10.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_nested_timeouts_concurrent: the outer expires, the inner has not.
CORIO_TEST(Timeout, NestedOuterExpiresInnerPassesCancelThrough) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = co_await outcome(timeout(1s, [&](Timeout&) -> Coro<> {
        std::string inner = co_await outcome(timeout(10s, [&](Timeout& cm2) -> Coro<> {
            try {
                co_await sleep(100s);
            } catch (const CancelledError&) {
                log.push_back(std::string("inner expired=") + (cm2.expired() ? "true" : "false"));
                throw;
            }
        }));
        log.push_back("inner scope: " + inner);
        if (inner == "CancelledError") throw CancelledError();
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"inner expired=false", "inner scope: CancelledError"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_timeouts.py::test_nested_timeouts_loop_busy: the inner expires first and raises
// TimeoutError; the outer is unaffected and fires later at its own deadline.
CORIO_TEST(Timeout, NestedInnerExpiresFirstOuterFiresLater) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = co_await outcome(timeout(10s, [&](Timeout&) -> Coro<> {
        std::string inner = co_await outcome(timeout(1s, [&](Timeout&) -> Coro<> { co_await sleep(100s); }));
        log.push_back("inner: " + inner + at(t0));
        co_await sleep(100s);  // interrupted by the outer timeout
        log.push_back("outer sleep was not interrupted");
    }));
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"inner: TimeoutError@1000"}));
    EXPECT_EQ(ms_since(t0), 10000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

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
    co_await sleep(6ms);  // the late tick has run: the expiry is queued, behind the sleeper
    if (scope && !body.done()) scope->reschedule(std::nullopt);
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
