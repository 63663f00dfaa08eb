// TaskGroup: asyncio's TaskGroup rules (asyncio-rules.md 1.TG), ported from CPython's
// Lib/test/test_asyncio/test_taskgroups.py. All time is virtual (MockClock) and exact.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

using Log = std::vector<std::string>;

struct ZeroDivisionError : std::runtime_error {
    ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};
struct MyExc : std::runtime_error {
    MyExc() : std::runtime_error("MyExc") {}
};
struct ValueError : std::runtime_error {
    explicit ValueError(const std::string& what = "ValueError") : std::runtime_error(what) {}
};
struct TypeError : std::runtime_error {
    TypeError() : std::runtime_error("TypeError") {}
};
struct RuntimeError : std::runtime_error {
    RuntimeError() : std::runtime_error("RuntimeError") {}
};

// A readable shape of any exception: "EG[ZeroDivisionError,EG[ValueError]]", "CancelledError".
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
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown";
    }
}

// Awaits `t` and says how it ended: "ok" or the shape of what it threw.
template <class T>
Coro<std::string> outcome(Task<T> t) {
    std::string out = "ok";
    try {
        co_await t;
    } catch (...) {
        out = shape(std::current_exception());
    }
    co_return out;
}

Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}

Coro<> nap(Clock::duration d) { co_await sleep(d); }

template <class E>
Coro<> raise_after(Clock::duration d) {
    co_await sleep(d);
    throw E();
}

// Sleeps `d`; when cancelled, logs "<name>:cancelled@<ms>" and re-raises.
Coro<> sleeper(Clock::duration d, std::string name, Log* log, Clock::time_point t0) {
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        log->push_back(tag(name + ":cancelled", t0));
        throw;
    }
    log->push_back(tag(name + ":done", t0));
}

// `try: await sleep(10) finally: 1/0`: a child that fails while being cancelled.
template <class E = ZeroDivisionError>
Coro<> crash_on_cancel(Clock::duration d) {
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        throw E();
    }
}

// Sleeps; on cancel spends `cleanup` (awaiting) before re-raising.
Coro<> slow_cleanup(Clock::duration d, Clock::duration cleanup, std::string name, Log* log, Clock::time_point t0) {
    std::exception_ptr cancelled;
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        log->push_back(tag(name + ":cleanup-start", t0));
        co_await sleep(cleanup);
        log->push_back(tag(name + ":cleanup-end", t0));
        std::rethrow_exception(cancelled);
    }
}

// Turns debug mode on and collects what reaches the exception handler; restores both.
class ReportCapture {
public:
    explicit ReportCapture(EventLoop& loop)
        : loop_(loop), previous_(loop.get_exception_handler()), debug_(loop.get_debug()),
          slow_(loop.slow_callback_duration) {
        loop.set_debug(true);
        loop.slow_callback_duration = std::chrono::hours(1);  // only "never awaited" matters here
        loop.set_exception_handler([this](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    }
    ~ReportCapture() {
        loop_.set_exception_handler(previous_);
        loop_.set_debug(debug_);
        loop_.slow_callback_duration = slow_;
    }
    std::size_t count_containing(const std::string& s) const {
        std::size_t n = 0;
        for (auto& r : reports)
            if (r.find(s) != std::string::npos) ++n;
        return n;
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
// TG1: lifecycle errors
// ---------------------------------------------------------------------------------------------

// test_taskgroups.py::test_taskgroup_finished, test_coro_closed_when_tg_closed
CORIO_TEST(TaskGroup, CreateTaskAfterFinishedThrowsLogicErrorAndClosesTheCoro) {
    corio::testing::MockClock clock;
    ReportCapture reports(get_running_loop());
    std::string message;
    {
        // The scope form without the helper: enter, exit, then use the finished group.
        TaskGroup tg(*current_task().state());
        Task<int> t = tg.create_task(value_after(1s, 1));
        Coro<> exiting = tg.exit(nullptr);
        co_await std::move(exiting);
        EXPECT_EQ(t.result(), 1);
        try {
            (void)tg.create_task(value_after(1s, 2));
        } catch (const std::logic_error& e) {
            message = e.what();
        }
        tg.cancel();  // TG12: a no-op after exit
    }
    EXPECT_EQ(message, "TaskGroup is finished");
    EXPECT_EQ(reports.count_containing("was never awaited"), 0u) << "the refused coroutine must be closed";
    EXPECT_EQ(current_task().cancelling(), 0);
    // Control: the report would have been seen had the coroutine been dropped unclosed.
    { Coro<int> dropped = value_after(1s, 3); }
    EXPECT_EQ(reports.count_containing("was never awaited"), 1u);
}

namespace {
// coro2 of test_taskgroup_no_create_task_after_failure: on cancel, tries to add a child.
Coro<> spawn_on_cancel(TaskGroup* g, std::string* message) {
    try {
        co_await sleep(1s);
    } catch (const CancelledError&) {
        try {
            (void)g->create_task(raise_after<ZeroDivisionError>(1ms));
        } catch (const std::logic_error& e) {
            *message = e.what();
        }
    }
}
}  // namespace

// test_taskgroups.py::test_taskgroup_no_create_task_after_failure
CORIO_TEST(TaskGroup, CreateTaskWhileShuttingDownThrowsLogicError) {
    corio::testing::MockClock clock;
    ReportCapture reports(get_running_loop());
    std::string child_message, body_message;
    std::string result = "ok";
    try {
        co_await task_group([&](TaskGroup& g) -> Coro<> {
            g.create_task(raise_after<ZeroDivisionError>(1ms));
            g.create_task(spawn_on_cancel(&g, &child_message));
            try {
                co_await sleep(10s);
            } catch (const CancelledError&) {
                try {
                    (void)g.create_task(raise_after<ZeroDivisionError>(1ms));
                } catch (const std::logic_error& e) {
                    body_message = e.what();
                }
                throw;
            }
        });
    } catch (...) {
        result = shape(std::current_exception());
    }
    EXPECT_EQ(result, "EG[ZeroDivisionError]");
    EXPECT_EQ(child_message, "TaskGroup is shutting down");
    EXPECT_EQ(body_message, "TaskGroup is shutting down");
    EXPECT_EQ(reports.count_containing("was never awaited"), 0u);
}

// ---------------------------------------------------------------------------------------------
// TG2: exit waits for every child
// ---------------------------------------------------------------------------------------------

// test_taskgroups.py::test_taskgroup_01, test_taskgroup_02
CORIO_TEST(TaskGroup, ExitWaitsForEveryChild) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<int> t1, t2;
    double body_done_ms = -1;
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        t1 = g.create_task(value_after(1s, 42));
        co_await sleep(1500ms);
        t2 = g.create_task(value_after(2s, 11));
        body_done_ms = ms_since(t0);
    });
    EXPECT_EQ(body_done_ms, 1500.0);
    EXPECT_EQ(ms_since(t0), 3500.0);
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
// test_taskgroup_24's root(): a child that adds more children to its own group.
Coro<> root(TaskGroup* g, Log* log, Clock::time_point t0) {
    co_await sleep(1s);
    log->push_back(tag("root", t0));
    g->create_task(sleeper(1s, "a", log, t0));
    g->create_task(sleeper(2s, "b", log, t0));
}
}  // namespace

// test_taskgroups.py::test_taskgroup_24
CORIO_TEST(TaskGroup, ChildrenMayAddChildren) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(root(&g, &log, t0));
        co_return;
    });
    EXPECT_EQ(ms_since(t0), 3000.0);
    EXPECT_EQ(log, (Log{"root@1000", "a:done@2000", "b:done@3000"}));
}

namespace {
Coro<> group_with_slow_child(Log* log, Clock::time_point t0) {
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        g.create_task(slow_cleanup(100s, 5s, "child", log, t0));
        co_await sleep(100s);
    });
}
}  // namespace

// TG2 (taskgroups.py __aexit__ loops until every child is done): a parent cancelled again while
// it waits for its children still waits for all of them.
CORIO_TEST(TaskGroup, ExitKeepsWaitingWhenCancelledAgain) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> r = create_task(group_with_slow_child(&log, t0));
    co_await sleep(1s);
    EXPECT_TRUE(r.cancel());
    co_await sleep(1s);
    EXPECT_FALSE(r.done());
    EXPECT_TRUE(r.cancel());  // again, while the group's exit waits
    co_await sleep(1s);
    EXPECT_TRUE(r.cancel());
    std::string how = co_await outcome(r);
    EXPECT_EQ(how, "CancelledError");
    EXPECT_EQ(ms_since(t0), 6000.0);
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(log, (Log{"child:cleanup-start@1000", "child:cleanup-end@6000"}));
}

// ---------------------------------------------------------------------------------------------
// TG3: a cancelled child is not an error
// ---------------------------------------------------------------------------------------------

// test_taskgroups.py::test_taskgroup_03
CORIO_TEST(TaskGroup, CancelledChildIsNotAnError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Task<int> t1, t2;
    double after_cancel_ms = -1;
    co_await task_group([&](TaskGroup& g) -> Coro<> {
        t1 = g.create_task(value_after(1s, 42));
        t2 = g.create_task(value_after(2s, 11));
        co_await sleep(100ms);
        t2.cancel();
        co_await sleep(200ms);  // the body is not cancelled
        after_cancel_ms = ms_since(t0);
    });
    EXPECT_EQ(after_cancel_ms, 300.0);
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_EQ(t1.result(), 42);
    EXPECT_TRUE(t2.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
}

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
