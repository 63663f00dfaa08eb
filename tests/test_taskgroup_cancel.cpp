// TaskGroup cancellation: external cancellation of the parent (TG6), child errors that beat the
// cancellation (TG7), the cancel count kept stable (TG8), and tg.cancel() (TG12)
// (asyncio-rules.md 1.TG), ported from CPython's Lib/test/test_asyncio/test_taskgroups.py. All
// time is virtual (MockClock) and exact.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "task_support.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

struct RuntimeError : std::runtime_error {
    RuntimeError() : std::runtime_error("RuntimeError") {}
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// TG6: external cancellation of the parent
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> runner_cancellation(Log* log, Clock::time_point t0) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(sleeper(std::chrono::seconds(10 + i), std::to_string(10 + i), log, t0));
        co_return;
    });
    log->push_back("after-group");
}
}  // namespace

// test_taskgroups.py::test_cancellation
CORIO_TEST(TaskGroup, ExternalCancelCancelsAndAwaitsChildren) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> r = create_task(runner_cancellation(&log, t0));
    co_await sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel("stop");
    std::string message;
    try {
        co_await r;
    } catch (const CancelledError& e) {
        message = std::string("CancelledError:") + e.what();
    } catch (...) {
        message = shape(std::current_exception());
    }
    EXPECT_EQ(message, "CancelledError:stop");
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(log, (Log{"10:cancelled@100", "11:cancelled@100", "12:cancelled@100", "13:cancelled@100",
                        "14:cancelled@100"}));
    EXPECT_EQ(ms_since(t0), 100.0);
}

namespace {
Coro<> runner_07(Log* log, Clock::time_point t0) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(sleeper(5s, str("c", i), log, t0));
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            log->push_back(tag("body:cancelled", t0));
            throw;
        }
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_07 (NUM == 15: the body and all five children see it)
CORIO_TEST(TaskGroup, ExternalCancelReachesBodyThenChildren) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> r = create_task(runner_07(&log, t0));
    co_await sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_EQ(log, (Log{"body:cancelled@100", "c0:cancelled@100", "c1:cancelled@100", "c2:cancelled@100",
                        "c3:cancelled@100", "c4:cancelled@100"}));
}

namespace {
Coro<> runner_17(int* num) {
    co_await task_group([&](TaskGroup&) -> Coro<> {
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            *num += 10;
            throw;
        }
    });
    *num += 1000;
}
Coro<> runner_22() {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(value_after(1s, 42));
        g.create_task(value_after(2s, 11));
        co_return;
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_17 (no children), test_taskgroup_22 (cancelled in exit)
CORIO_TEST(TaskGroup, ExternalCancelWithNoChildrenOrWhileExiting) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    int num = 0;
    Task<> r = create_task(runner_17(&num));
    co_await sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_EQ(num, 10);

    Task<> r22 = create_task(runner_22());
    co_await sleep(50ms);
    r22.cancel();
    how = co_await outcome(r22);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_TRUE(r22.cancelled());
    EXPECT_EQ(ms_since(t0), 150.0);
}

// ---------------------------------------------------------------------------------------------
// TG7: child errors beat cancellation
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> runner_08() {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        for (int i = 0; i < 5; ++i) g.create_task(crash_on_cancel(10s));
        co_await sleep(10s);
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_08
CORIO_TEST(TaskGroup, ChildErrorsDuringCancellationBeatCancelledError) {
    corio::testing::MockClock clock;
    Task<> r = create_task(runner_08());
    co_await sleep(100ms);
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "EG[ZeroDivisionError,ZeroDivisionError,ZeroDivisionError,ZeroDivisionError,ZeroDivisionError]");
    EXPECT_FALSE(r.cancelled());
}

namespace {
Coro<> runner_15(Log* log, Clock::time_point t0) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(300ms));
        bool cancelled = false;
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            cancelled = true;
        }
        if (cancelled) {
            log->push_back(tag("body:cleanup", t0));
            try {
                co_await sleep(500ms);  // cut short by the group when the child crashes
            } catch (const CancelledError&) {
                log->push_back(tag("body:cleanup-cancelled", t0));
            }
            throw CancelledError();
        }
    });
}
Coro<> runner_16(Log* log, Clock::time_point t0) {
    Task<> t = create_task(runner_15(log, t0));
    co_await t;
}
}  // namespace

// test_taskgroups.py::test_taskgroup_15, test_taskgroup_16 (the same one task further down)
CORIO_TEST(TaskGroup, ChildCrashWhileBodyHandlesCancelGivesGroup) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> r = create_task(runner_15(&log, t0));
    co_await sleep(100ms);
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "EG[ZeroDivisionError]");
    EXPECT_EQ(log, (Log{"body:cleanup@100", "body:cleanup-cancelled@300"}));
    EXPECT_EQ(ms_since(t0), 300.0);

    log.clear();
    auto t1 = get_running_loop().time();
    Task<> r16 = create_task(runner_16(&log, t1));
    co_await sleep(100ms);
    r16.cancel();
    how = co_await outcome(r16);
    EXPECT_EQ(how, "EG[ZeroDivisionError]");
    EXPECT_EQ(log, (Log{"body:cleanup@100", "body:cleanup-cancelled@300"}));
}

namespace {
Coro<> runner_18(int* num) {
    co_await task_group([&](TaskGroup&) -> Coro<> {
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            *num += 10;
            throw MyExc();  // not a good idea, but supported
        }
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_18
CORIO_TEST(TaskGroup, BodyTurningCancelIntoErrorGivesGroup) {
    corio::testing::MockClock clock;
    int num = 0;
    Task<> r = create_task(runner_18(&num));
    co_await sleep(100ms);
    EXPECT_FALSE(r.done());
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "EG[MyExc]");
    EXPECT_EQ(num, 10);
}

// ---------------------------------------------------------------------------------------------
// TG8: the cancel count stays stable
// ---------------------------------------------------------------------------------------------

// test_taskgroups.py::test_cancelling_level_preserved, test_cancellation_does_not_leak_out_of_tg
CORIO_TEST(TaskGroup, CancellingLevelRestoredAfterHandledFailure) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            g.create_task(raise_after<RuntimeError>(0s));
            co_await sleep(1s);
        });
    } catch (const ExceptionGroup& eg) {
        result = eg.contains<std::runtime_error>() ? "RuntimeError" : "other";
    }
    EXPECT_EQ(result, "RuntimeError");
    EXPECT_EQ(current_task().cancelling(), 0);
    // The group's own cancel request is gone: the next sleep runs to its end.
    co_await sleep(1s);
    EXPECT_EQ(ms_since(t0), 1000.0);
}

namespace {
Coro<> raise_error_09(bool* started) {
    *started = true;
    co_await sleep(0s);
    throw std::runtime_error("RuntimeError");
}
Coro<> inner_error_and_cancel(bool* started, Log* log) {
    try {
        co_await task_group([&](TaskGroup& tg) -> Coro<> {
            tg.create_task(raise_error_09(started));
            co_await sleep(1s);
            log->push_back("sleep in group was not cancelled");
        });
    } catch (const ExceptionGroup& eg) {
        log->push_back(std::string("except*:") + (eg.contains<std::runtime_error>() ? "RuntimeError" : "other") +
                       str(":cancelling=", current_task().cancelling()));
    }
    log->push_back(str("after:cancelling=", current_task().cancelling()));
    try {
        co_await sleep(1s);
    } catch (const CancelledError&) {
        log->push_back("sleep after group cancelled");
        throw;
    }
    log->push_back("sleep after group was not cancelled");
}
}  // namespace

// test_taskgroups.py::test_error_and_cancel
CORIO_TEST(TaskGroup, ErrorAndExternalCancelKeepsCancelPending) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    bool started = false;
    Log log;
    Task<> t = create_task(inner_error_and_cancel(&started, &log));
    while (!started) co_await sleep(0s);  // event.wait()
    EXPECT_EQ(t.cancelling(), 0);
    t.cancel();
    EXPECT_EQ(t.cancelling(), 1);
    std::string how = co_await outcome(t);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (Log{"except*:RuntimeError:cancelling=1", "after:cancelling=1", "sleep after group cancelled"}));
    EXPECT_EQ(ms_since(t0), 0.0);
}

// test_taskgroups.py::test_nested_groups_both_cancelled (gh-116720)
CORIO_TEST(TaskGroup, NestedGroupsBothCancelledRestoreLevelStepByStep) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    try {
        co_await task_group([&](TaskGroup& outer_tg) -> Coro<> {
            try {
                co_await task_group([&](TaskGroup& inner_tg) -> Coro<> {
                    inner_tg.create_task(raise_after<RuntimeError>(0s));
                    outer_tg.create_task(raise_after<ValueError>(0s));
                    co_return;
                });
                log.push_back("RuntimeError not raised");
            } catch (const ExceptionGroup& eg) {
                log.push_back("inner:" + shape(std::make_exception_ptr(eg)));
            }
            log.push_back(str("inner-level=", current_task().cancelling()));
        });
        log.push_back("ValueError not raised");
    } catch (const ExceptionGroup& eg) {
        log.push_back("outer:" + shape(std::make_exception_ptr(eg)));
    }
    log.push_back(str("outer-level=", current_task().cancelling()));
    EXPECT_EQ(log, (Log{"inner:EG[RuntimeError]", "inner-level=1", "outer:EG[ValueError]", "outer-level=0"}));
    co_await sleep(1s);  // nothing left pending
    EXPECT_EQ(ms_since(t0), 1000.0);
}

// ---------------------------------------------------------------------------------------------
// TG12: tg.cancel() (asyncio 3.15, gh-108951)
// ---------------------------------------------------------------------------------------------

// TaskGroup.cancel() tests of gh-108951 / PR #127214 (test_taskgroups.py): cancel from the body
// (the count reaches 1), idempotent
CORIO_TEST(TaskGroup, CancelFromBodyEndsGroupWithoutError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    int count = 0;
    Task<int> t1, t2;
    co_await task_group([&](TaskGroup& tg) -> Coro<> {
        t1 = tg.create_task(value_after(10s, 1));
        t2 = tg.create_task(value_after(10s, 2));
        co_await sleep(1s);
        tg.cancel();
        tg.cancel();  // idempotent
        count += 1;
        co_await sleep(0s);
        count += 1;
    });
    EXPECT_EQ(count, 1);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_TRUE(t2.cancelled());
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // no cancellation left pending
    EXPECT_EQ(ms_since(t0), 2000.0);
}

// TG12: tg.cancel() from a body that then leaves without awaiting: no cancel is left pending.
CORIO_TEST(TaskGroup, CancelBeforeAnyAwaitWithNoChildren) {
    corio::testing::MockClock clock;
    Log log;
    co_await task_group([&](TaskGroup& tg) -> Coro<> {
        tg.cancel();
        log.push_back("after-cancel");
        co_return;  // leaves without another await: nothing is left pending on the task
    });
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);
    log.push_back("slept");
    EXPECT_EQ(log, (Log{"after-cancel", "slept"}));
}

namespace {
Coro<> cancel_group_after(TaskGroup* tg, Clock::duration d, Log* log, Clock::time_point t0) {
    co_await sleep(d);
    log->push_back(tag("child:cancel", t0));
    tg->cancel();
}
}  // namespace

// TaskGroup.cancel() tests of gh-108951 (test_taskgroups.py): cancel from a child
CORIO_TEST(TaskGroup, CancelFromChildEndsGroupWithoutError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> canceller, other;
    co_await task_group([&](TaskGroup& tg) -> Coro<> {
        canceller = tg.create_task(cancel_group_after(&tg, 1s, &log, t0));
        other = tg.create_task(sleeper(10s, "other", &log, t0));
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            log.push_back(tag("body:cancelled", t0));
            throw;
        }
    });
    // tg.cancel() cancels the children first, then the body (taskgroups.py: _abort(), then the parent).
    EXPECT_EQ(log, (Log{"child:cancel@1000", "other:cancelled@1000", "body:cancelled@1000"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_TRUE(other.cancelled());
    // The child cancelled itself too, and returned without another await: it ends cancelled (T6).
    EXPECT_TRUE(canceller.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
// Catches its cancellation, then takes a while to clean up.
Coro<> slow_to_finish(Clock::duration cleanup) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
    }
    co_await sleep(cleanup);
}
Coro<> group_that_cancels_itself(Log* log) {
    co_await task_group([](TaskGroup& tg) -> Coro<> {
        tg.create_task(slow_to_finish(50ms));
        co_await sleep(0s);
        tg.cancel();
        co_return;  // the group's exit now waits for the slow child
    });
    log->push_back("ran on after the group");
}
}  // namespace

// gh-155433: after tg.cancel(), a cancellation from outside that arrives while the group waits
// for its children is not the group's own: it propagates (it used to be swallowed, and the
// parent ran on).
CORIO_TEST(TaskGroup, OutsideCancelDuringTheExitOfACancelledGroupPropagates) {
    corio::testing::MockClock clock;
    Log log;
    Task<> parent = create_task(group_that_cancels_itself(&log));
    co_await sleep(10ms);
    EXPECT_FALSE(parent.done());
    parent.cancel();
    std::string how = co_await outcome(parent);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_TRUE(parent.cancelled());
    EXPECT_TRUE(log.empty());
}

// gh-155433: tg.cancel() must not swallow an enclosing timeout's cancellation.
CORIO_TEST(TaskGroup, CancelInsideExpiredTimeoutStillRaisesTimeoutError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string result = "ok";
    try {
        co_await timeout(500ms, [&](Timeout&) -> Coro<> {
            co_await task_group([&](TaskGroup& tg) -> Coro<> {
                tg.create_task(nap(10s));
                try {
                    co_await sleep(1s);  // the timeout fires here
                } catch (const CancelledError&) {
                    tg.cancel();  // `finally: tg.cancel()`
                    throw;
                }
            });
        });
    } catch (const TimeoutError&) {
        result = "TimeoutError";
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(ms_since(t0), 500.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// gh-155433, the other order: tg.cancel() first, the timeout fires while the group waits.
CORIO_TEST(TaskGroup, TimeoutFiringAfterCancelStillRaisesTimeoutError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = "ok";
    try {
        co_await timeout(500ms, [&](Timeout&) -> Coro<> {
            co_await task_group([&](TaskGroup& tg) -> Coro<> {
                tg.create_task(slow_cleanup(10s, 1s, "child", &log, t0));
                co_await sleep(100ms);
                tg.cancel();
                co_await sleep(10s);
            });
        });
    } catch (const TimeoutError&) {
        result = "TimeoutError";
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "TimeoutError");
    EXPECT_EQ(log, (Log{"child:cleanup-start@100", "child:cleanup-end@1100"}));
    EXPECT_EQ(ms_since(t0), 1100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<> group_cancelled_by_itself_and_from_outside(Log* log) {
    co_await task_group([&](TaskGroup& tg) -> Coro<> {
        tg.create_task(nap(10s));
        co_await sleep(1s);  // cancelled from outside here
    });
    log->push_back("group exited normally");
}
}  // namespace

// TG12: an external cancel still propagates even when tg.cancel() is also called.
CORIO_TEST(TaskGroup, CancelDoesNotSwallowExternalCancel) {
    corio::testing::MockClock clock;
    Log log;
    Task<> r = create_task(group_cancelled_by_itself_and_from_outside(&log));
    co_await sleep(100ms);
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_TRUE(log.empty());

    // Now tg.cancel() from a child in the same tick as the outer cancel.
    Log log2;
    TaskGroup* group = nullptr;
    auto body = [&]() -> Coro<> {
        co_await task_group([&](TaskGroup& tg) -> Coro<> {
            group = &tg;
            tg.create_task(nap(10s));
            co_await sleep(10s);
        });
        log2.push_back("group exited normally");
    };
    Task<> r2 = create_task(body());
    co_await sleep(100ms);
    CO_ASSERT_TRUE(group != nullptr);
    r2.cancel();
    group->cancel();
    how = co_await outcome(r2);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_TRUE(log2.empty());
}
