// TaskGroup errors: the first child failure cancels the siblings and the body (TG4), a body
// failure is wrapped in an ExceptionGroup even without a child failure (TG5), and nested groups
// and split/contains (TG9) (asyncio-rules.md 1.TG), ported from CPython's
// Lib/test/test_asyncio/test_taskgroups.py. All time is virtual (MockClock) and exact.
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

struct TypeError : std::runtime_error {
    TypeError() : std::runtime_error("TypeError") {}
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// TG4: the first child failure cancels the siblings and the body
// ---------------------------------------------------------------------------------------------

namespace {
// test_taskgroup_04's runner().
Coro<> foo2_04(int* n, bool* cancelled) {
    try {
        co_await sleep(1s);
    } catch (const CancelledError&) {
        *cancelled = true;
        throw;
    }
    *n += 1;
}

Coro<> runner_04(Task<>* t2, int* num, bool* t2_cancel) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        *t2 = g.create_task(foo2_04(num, t2_cancel));
        co_return;
    });
    *num += 10;
}
}  // namespace

// test_taskgroups.py::test_taskgroup_04, test_cancel_children_on_child_error
CORIO_TEST(TaskGroup, FirstChildFailureCancelsSiblings) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<> t2;
    int num = 0;
    bool t2_cancel = false;
    Task<> r = create_task(runner_04(&t2, &num, &t2_cancel));
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "EG[ZeroDivisionError]");
    EXPECT_EQ(ms_since(t0), 100.0);
    EXPECT_EQ(num, 0);
    EXPECT_TRUE(t2_cancel);
    EXPECT_TRUE(t2.cancelled());
}

namespace {
Coro<> throw_on_cancel_after(Clock::duration cleanup, std::string error, Log* log, Clock::time_point t0) {
    bool cancelled = false;
    try {
        co_await sleep(100s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await sleep(cleanup);
        log->push_back(tag(error, t0));
        throw ValueError(error);
    }
}
}  // namespace

// TG4 (taskgroups.py source): errors are ordered by completion, the body's own error last.
CORIO_TEST(TaskGroup, ErrorsOrderedByCompletionBodyErrorLast) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            g.create_task(throw_on_cancel_after(2s, "late", &log, t0));  // fails at 3 s
            g.create_task(raise_after<ZeroDivisionError>(1s));            // fails first, at 1 s
            g.create_task(throw_on_cancel_after(0s, "soon", &log, t0));   // fails at 1 s, just after
            try {
                co_await sleep(100s);
            } catch (const CancelledError&) {
                log.push_back(tag("body-cancelled", t0));
                throw MyExc();
            }
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[ZeroDivisionError,soon,late,MyExc]");
    EXPECT_EQ(log, (Log{"body-cancelled@1000", "soon@1000", "late@3000"}));
    EXPECT_EQ(ms_since(t0), 3000.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<> foo2_05(bool* t2_cancel) {
    try {
        co_await sleep(5s);
    } catch (const CancelledError&) {
        *t2_cancel = true;
        throw;
    }
}
Coro<> runner_05(Task<>* t2, bool* t2_cancel) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        g.create_task(raise_after<ZeroDivisionError>(100ms));
        *t2 = g.create_task(foo2_05(t2_cancel));
        co_return;
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_05 (get_error_types() == {ZeroDivisionError}: a set)
CORIO_TEST(TaskGroup, SeveralFailingChildrenGiveOnlyTheirErrors) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<> t2;
    bool t2_cancel = false;
    Task<> r = create_task(runner_05(&t2, &t2_cancel));
    std::exception_ptr error;
    try {
        co_await r;
    } catch (const ExceptionGroup&) {
        error = std::current_exception();
    }
    CO_ASSERT_TRUE(error != nullptr);
    try {
        std::rethrow_exception(error);
    } catch (const ExceptionGroup& eg) {
        EXPECT_GE(eg.exceptions().size(), 1u);
        auto [match, rest] = eg.split<ZeroDivisionError>();
        EXPECT_TRUE(match.has_value());
        EXPECT_FALSE(rest.has_value());
    }
    EXPECT_TRUE(t2_cancel);
    EXPECT_TRUE(t2.cancelled());
    EXPECT_EQ(ms_since(t0), 100.0);
}

namespace {
struct CustomException : std::runtime_error {
    CustomException() : std::runtime_error("CustomException") {}
};
Coro<> raise_custom() {
    throw CustomException();
    co_return;
}
// `@asynccontextmanager async def database(): try: yield finally: raise CustomException`
struct Database {
    Coro<> aclose() {
        throw CustomException();
        co_return;
    }
};
Coro<Database> open_database() { co_return Database{}; }
}  // namespace

// test_taskgroups.py::test_taskgroup_context_manager_exit_raises (GH-95289): a child error and
// the body's own error (from an async context manager's exit) both reported, level back to 0.
CORIO_TEST(TaskGroup, ChildErrorAndContextManagerExitErrorBothReported) {
    corio::testing::MockClock clock;
    std::string result = "ok";
    int level = -1;
    try {
        co_await task_group([&](TaskGroup& tg) -> Coro<> {
            co_await async_with(open_database(), [&](Database&) -> Coro<> {
                tg.create_task(raise_custom());
                co_await sleep(1s);
            });
        });
    } catch (const ExceptionGroup& eg) {
        level = current_task().cancelling();
        result = shape(std::make_exception_ptr(eg));
    }
    EXPECT_EQ(level, 0);
    EXPECT_EQ(result, "EG[CustomException,CustomException]");
}

// ---------------------------------------------------------------------------------------------
// TG5: a body failure is wrapped, even with no child failure
// ---------------------------------------------------------------------------------------------

// test_taskgroups.py::test_taskgroup_09
CORIO_TEST(TaskGroup, BodyFailureCancelsChildrenAndIsWrapped) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<int> t1, t2;
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            t1 = g.create_task(value_after(1s, 42));
            t2 = g.create_task(value_after(2s, 11));
            co_await sleep(100ms);
            throw ZeroDivisionError();
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[ZeroDivisionError]");
    EXPECT_EQ(ms_since(t0), 100.0);
    EXPECT_TRUE(t1.cancelled());
    EXPECT_TRUE(t2.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
}

// test_taskgroups.py::test_taskgroup_10 (the body raises before any await),
// test_exception_refcycles_direct (no children at all)
CORIO_TEST(TaskGroup, BodyFailureBeforeAnyAwaitIsWrapped) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<> t1;
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            t1 = g.create_task(nap(10s));
            throw ZeroDivisionError();
            co_return;
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[ZeroDivisionError]");
    EXPECT_EQ(ms_since(t0), 0.0);
    EXPECT_TRUE(t1.cancelled());

    result = "ok";
    try {
        co_await task_group([&](TaskGroup&) -> Coro<> {
            throw MyExc();
            co_return;
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[MyExc]");
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
// test_taskgroup_19: `try: await sleep(10) finally: raise MyExc`, awaited by the body itself.
Coro<> nested_19() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        throw MyExc();
    }
}
}  // namespace

// test_taskgroups.py::test_taskgroup_19
CORIO_TEST(TaskGroup, ChildFailureThenBodyFailureBothInGroup) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            g.create_task(raise_after<ZeroDivisionError>(100ms));
            co_await nested_19();
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[ZeroDivisionError,MyExc]");
    EXPECT_EQ(ms_since(t0), 100.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// ---------------------------------------------------------------------------------------------
// TG9: nesting
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> runner_11() {
    co_await task_group([&](TaskGroup&) -> Coro<> {
        co_await task_group([&](TaskGroup& g2) -> Coro<> {
            for (int i = 0; i < 5; ++i) g2.create_task(crash_on_cancel(10s));
            co_await sleep(10s);
        });
    });
}
Coro<> runner_12() {
    co_await task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(nap(10s));
        co_await task_group([&](TaskGroup& g2) -> Coro<> {
            for (int i = 0; i < 5; ++i) g2.create_task(crash_on_cancel(10s));
            co_await sleep(10s);
        });
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_11, test_taskgroup_12
CORIO_TEST(TaskGroup, CancelledOuterGivesNestedGroup) {
    corio::testing::MockClock clock;
    const std::string five = "ZeroDivisionError,ZeroDivisionError,ZeroDivisionError,ZeroDivisionError,ZeroDivisionError";
    Task<> r = create_task(runner_11());
    co_await sleep(100ms);
    r.cancel();
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "EG[EG[" + five + "]]");

    Task<> r12 = create_task(runner_12());
    co_await sleep(100ms);
    r12.cancel();
    how = co_await outcome(r12);
    EXPECT_EQ(how, "EG[EG[" + five + "]]");
}

namespace {
Coro<> crash_after(Clock::duration d) {
    co_await sleep(d);
    throw ValueError(std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}
Coro<> runner_13() {
    co_await task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(crash_after(100ms));
        co_await task_group([&](TaskGroup& g2) -> Coro<> {
            g2.create_task(crash_after(10s));
            co_return;
        });
    });
}
Coro<> runner_14() {
    co_await task_group([&](TaskGroup& g1) -> Coro<> {
        g1.create_task(crash_after(10s));
        co_await task_group([&](TaskGroup& g2) -> Coro<> {
            g2.create_task(crash_after(100ms));
            co_return;
        });
    });
}
}  // namespace

// test_taskgroups.py::test_taskgroup_13 (outer child crashes first: inner contributes nothing),
// test_taskgroup_14 (inner child crashes first: EG[EG[ValueError]])
CORIO_TEST(TaskGroup, NestedGroupShapesFollowWhoFailedFirst) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<> r13 = create_task(runner_13());
    std::string how = co_await outcome(r13);
    EXPECT_EQ(how, "EG[100]");
    EXPECT_EQ(ms_since(t0), 100.0);

    Task<> r14 = create_task(runner_14());
    how = co_await outcome(r14);
    EXPECT_EQ(how, "EG[EG[100]]");
    EXPECT_EQ(ms_since(t0), 200.0);
    EXPECT_EQ(current_task().cancelling(), 0);
}

// TG9: split<E>() and contains<E>() look into nested groups (except*)
CORIO_TEST(TaskGroup, SplitAndContainsLookIntoNestedGroups) {
    corio::testing::MockClock clock;
    std::exception_ptr caught;
    try {
        co_await task_group([&](TaskGroup& g1) -> Coro<> {
            g1.create_task(raise_after<ValueError>(2s));
            co_await task_group([&](TaskGroup& g2) -> Coro<> {
                g2.create_task(raise_after<TypeError>(1s));
                g2.create_task(crash_on_cancel<ValueError>(10s));
                co_return;
            });
        });
    } catch (const ExceptionGroup&) {
        caught = std::current_exception();
    }
    CO_ASSERT_TRUE(caught != nullptr);
    // g1's child was cancelled by the inner group's failure (the body failed): only the inner group.
    EXPECT_EQ(shape(caught), "EG[EG[TypeError,ValueError]]");

    ExceptionGroup eg("top", {std::make_exception_ptr(ValueError()),
                              std::make_exception_ptr(ExceptionGroup("inner", {std::make_exception_ptr(TypeError()),
                                                                               std::make_exception_ptr(ValueError())}))});
    EXPECT_TRUE(eg.contains<ValueError>());
    EXPECT_TRUE(eg.contains<TypeError>());  // only inside the nested group
    EXPECT_TRUE(eg.contains<std::runtime_error>());
    EXPECT_FALSE(eg.contains<ZeroDivisionError>());
    EXPECT_FALSE(eg.contains<std::logic_error>());

    auto [match, rest] = eg.split<ValueError>();
    CO_ASSERT_TRUE(match.has_value());
    CO_ASSERT_TRUE(rest.has_value());
    EXPECT_EQ(shape(std::make_exception_ptr(*match)), "EG[ValueError,EG[ValueError]]");
    EXPECT_EQ(shape(std::make_exception_ptr(*rest)), "EG[EG[TypeError]]");
    EXPECT_EQ(match->message(), "top");
    EXPECT_EQ(rest->message(), "top");

    auto [m2, r2] = eg.split<ZeroDivisionError>();
    EXPECT_FALSE(m2.has_value());
    CO_ASSERT_TRUE(r2.has_value());
    EXPECT_EQ(shape(std::make_exception_ptr(*r2)), "EG[ValueError,EG[TypeError,ValueError]]");

    auto [m3, r3] = eg.split<std::runtime_error>();
    CO_ASSERT_TRUE(m3.has_value());
    EXPECT_FALSE(r3.has_value());
}

namespace {
Coro<> fails_after(Clock::duration d, std::string name, Log* log) {
    co_await sleep(d);
    log->push_back("child " + name + " raises");
    throw std::runtime_error(name);
}
}  // namespace

// F2 / TG4: the group hears of a child's end from a done callback, on a later step, so what was
// already ready runs first: two children whose timers fire in the same tick both fail (asyncio
// reports both), and the body's step already queued (after sleep(0)) runs before the group
// cancels it. The sequence is CPython 3.11's for the same program.
CORIO_TEST(TaskGroup, ChildrenFailingInTheSameTickAreAllReported) {
    corio::testing::MockClock clock;
    Log log;
    std::string result = "no error";
    try {
        co_await task_group([&log](TaskGroup& tg) -> Coro<> {
            tg.create_task(fails_after(1s, "1", &log));
            tg.create_task(fails_after(1s, "2", &log));
            co_await sleep(1s);
            log.push_back("body after sleep");
            co_await sleep(0s);
            log.push_back("body after sleep(0)");
        });
    } catch (const ExceptionGroup& eg) {
        result = shape(std::make_exception_ptr(eg));
    }
    log.push_back(result);
    EXPECT_EQ(log, (Log{"body after sleep", "child 1 raises", "child 2 raises", "body after sleep(0)", "EG[1,2]"}));
}

namespace {
Coro<> fails_at_once() {
    co_await sleep(0s);
    throw std::runtime_error("child failed");
}
}  // namespace

// F2 / TG4: the group's done callback was added before the body awaited the child, so it runs
// first: the group cancels the body, which sees CancelledError at `co_await child`, not the
// child's error (CPython 3.11 prints the same for this program).
CORIO_TEST(TaskGroup, ABodyAwaitingAFailingChildIsCancelledByTheGroupFirst) {
    std::string seen = "nothing";
    std::string result = "no error";
    try {
        co_await task_group([&seen](TaskGroup& tg) -> Coro<> {
            Task<> child = tg.create_task(fails_at_once());
            try {
                co_await child;
            } catch (const CancelledError&) {
                seen = "CancelledError";
                throw;
            } catch (const std::exception& e) {
                seen = e.what();
            }
        });
    } catch (const ExceptionGroup& eg) {
        result = shape(std::make_exception_ptr(eg));
    }
    EXPECT_EQ(seen, "CancelledError");
    EXPECT_EQ(result, "EG[child failed]");
}

// ---------------------------------------------------------------------------------------------
// TG10: a KeyboardInterrupt propagates as itself (asyncio's _base_error)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> crash_soon_20() {
    co_await sleep(100ms);
    throw std::runtime_error("ZeroDivisionError");
}
// test_taskgroup_20's nested(): its finally raises KeyboardInterrupt.
Coro<> interrupted_as_it_is_cancelled() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
    }
    throw KeyboardInterrupt();
}
Coro<> child_interrupted() {
    co_await sleep(100ms);
    throw KeyboardInterrupt();
}

// Whether a group with this body ends with a KeyboardInterrupt as itself (not in a group).
template <class Body>
Coro<bool> ends_interrupted(Body body) {
    try {
        Coro<> grouping = task_group(std::move(body));
        co_await std::move(grouping);
    } catch (const KeyboardInterrupt&) {
        co_return true;
    } catch (const ExceptionGroup& eg) {
        ADD_FAILURE() << "wrapped: " << eg.what();
    }
    co_return false;
}
}  // namespace

// test_taskgroup_20: the body's KeyboardInterrupt, raised while a child's failure cancels it,
// propagates as itself. corio wrapped it in the ExceptionGroup, a std::exception, which a
// `catch (const std::exception&)` then swallowed (found by the TaskGroup hunt).
CORIO_TEST(TaskGroupInterrupt, TheBodysKeyboardInterruptPropagatesAsItself) {
    corio::testing::MockClock clock;
    Coro<bool> run = ends_interrupted([](TaskGroup& g) -> Coro<> {
        g.create_task(crash_soon_20());
        co_await interrupted_as_it_is_cancelled();
    });
    const bool interrupted = co_await std::move(run);
    EXPECT_TRUE(interrupted);
}

// The same for a child's KeyboardInterrupt (asyncio's _on_task_done records it as _base_error;
// its loop then also stops, which corio's does not).
CORIO_TEST(TaskGroupInterrupt, AChildsKeyboardInterruptPropagatesAsItself) {
    corio::testing::MockClock clock;
    Coro<bool> run = ends_interrupted([](TaskGroup& g) -> Coro<> {
        g.create_task(child_interrupted());
        g.create_task(crash_soon_20());
        co_await sleep(10s);
    });
    const bool interrupted = co_await std::move(run);
    EXPECT_TRUE(interrupted);
}
