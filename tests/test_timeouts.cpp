// timeout / timeout_at: asyncio's rules (asyncio-rules.md 1.TO), ported from CPython's
// Lib/test/test_asyncio/test_timeouts.py. All time is virtual (MockClock) and asserted exactly.
// This file: the basics (TO1 - TO4) and which timeout converts a cancellation (TO5, TO6).
// reschedule and expiry (TO7, TO8, TO11) are in test_timeout_expiry.cpp, wait_for (WF1 - WF8,
// test_waitfor.py) in test_timeout_wait_for.cpp.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "task_support.hpp"

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

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
