// TaskGroup: asyncio's TaskGroup rules (asyncio-rules.md 1.TG), ported from CPython's
// Lib/test/test_asyncio/test_taskgroups.py. All time is virtual (MockClock) and exact.
// This file: lifecycle errors (TG1), the exit waiting for every child (TG2), a cancelled child
// (TG3). Errors (TG4, TG5, TG9) are in test_taskgroup_errors.cpp, cancellation (TG6 - TG8, TG12)
// in test_taskgroup_cancel.cpp.
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
