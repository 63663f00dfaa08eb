// corio::run and corio::Runner: results and exceptions, nesting, the shutdown order of R3
// (tasks cancelled and awaited before async generators are closed; failures during shutdown
// reported), Runner's several runs on one loop and close(). Debug mode: test_debug_mode.cpp.
// Ports CPython's Lib/test/test_asyncio/test_runners.py and test_base_events.py (slow callbacks);
// each test names the CPython test (or the asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::capture_reports;

namespace {

using Log = std::vector<std::string>;

std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (const CancelledError& c) {
        return std::string("CancelledError: ") + c.what();
    } catch (...) {
        return "?";
    }
}

Coro<int> answer() {
    co_await sleep(0s);
    co_return 42;
}

Coro<> nothing() {
    co_await sleep(0s);
}

Coro<int> fails() {
    co_await sleep(0s);
    throw std::runtime_error("main failed");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// corio::run (R1, R2)
// ---------------------------------------------------------------------------------------------

// R2 / test_runners.py::RunTests::test_asyncio_run_return.
TEST(Run, ReturnsTheValue) {
    EXPECT_EQ(corio::run(answer()), 42);
    corio::run(nothing());
    auto text = []() -> Coro<std::string> { co_return "text"; };
    EXPECT_EQ(corio::run(text()), "text");
}

// R2 / test_runners.py::RunTests::test_asyncio_run_raises.
TEST(Run, PropagatesExceptions) {
    try {
        corio::run(fails());
        ADD_FAILURE() << "run() did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "main failed");
    }
}

// R2: a main task that ends cancelled makes run() throw CancelledError.
TEST(Run, PropagatesCancellationOfMain) {
    auto self_cancel = []() -> Coro<int> {
        current_task().cancel("bye");
        co_await sleep(0s);
        co_return 1;
    };
    try {
        corio::run(self_cancel());
        ADD_FAILURE() << "run() did not throw";
    } catch (const CancelledError& e) {
        EXPECT_STREQ(e.what(), "bye");
    }
}

namespace {
Coro<std::string> run_inside_run() {
    try {
        corio::run(answer());
    } catch (const std::logic_error& e) {
        co_return std::string("logic_error: ") + e.what();
    }
    co_return "no error";
}
Coro<bool> runner_run_inside_run() {
    Runner inner;
    try {
        inner.run(answer());
    } catch (const std::logic_error&) {
        co_return true;
    }
    co_return false;
}
}  // namespace

// R1 / test_runners.py::RunTests::test_asyncio_run_from_running_loop, RunnerTests::
// test_recursive_run: run() (and Runner::run) inside a running loop throws std::logic_error.
TEST(Run, RunInsideARunningLoopThrowsLogicError) {
    EXPECT_EQ(corio::run(run_inside_run()),
              "logic_error: corio::run() cannot be called from a running event loop");
    EXPECT_TRUE(corio::run(runner_run_inside_run()));
}

// ---------------------------------------------------------------------------------------------
// Shutdown (R3)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> hang_forever(Log* log) {
    try {
        co_await sleep(24h);
    } catch (const CancelledError&) {
        log->push_back("hanging task cancelled");
        throw;
    }
}
}  // namespace

// R3 / test_runners.py::RunTests::test_asyncio_run_cancels_hanging_tasks: tasks still pending
// when main returns are cancelled and awaited before run() returns.
TEST(Run, CancelsAndAwaitsRemainingTasks) {
    Log log;
    Task<> lo_task;
    auto main_coro = [](Log* l, Task<>* out) -> Coro<int> {
        *out = create_task(hang_forever(l));
        co_await sleep(0s);
        co_return 1;
    };
    EXPECT_EQ(corio::run(main_coro(&log, &lo_task)), 1);
    EXPECT_EQ(log, (Log{"hanging task cancelled"}));
    ASSERT_TRUE(lo_task);
    EXPECT_TRUE(lo_task.done());
    EXPECT_TRUE(lo_task.cancelled());
}

namespace {
Coro<> lazyboy_body() {
    bool cancelled = false;
    try {
        co_await sleep(24h);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) throw std::runtime_error("1/0 during shutdown");
}
}  // namespace

// R3 / test_runners.py::RunTests::test_asyncio_run_reports_hanging_tasks_errors: a task that
// fails while being cancelled at shutdown is reported through the exception handler.
TEST(Run, ReportsATaskThatFailsDuringShutdown) {
    std::vector<ExceptionContext> reports;
    auto main_coro = [](std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        (void)create_task(lazyboy_body(), "lazyboy");
        co_await sleep(0s);
    };
    corio::run(main_coro(&reports));
    ASSERT_EQ(reports.size(), 1u) << all_messages(reports);
    EXPECT_EQ(reports[0].message, "unhandled exception during corio::run() shutdown");
    EXPECT_EQ(reports[0].task_name, "lazyboy");
    EXPECT_EQ(what_of(reports[0].exception), "1/0 during shutdown");
}

namespace {
AsyncGenerator<int> counting(Log* log) {
    try {
        for (int i = 0;; ++i) co_yield i;
    } catch (const GeneratorExit&) {
        log->push_back("generator closed");
        throw;
    }
}

Coro<> slow_to_die(Log* log) {
    bool cancelled = false;
    try {
        co_await sleep(24h);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await sleep(0s);  // cleanup that takes a few ticks
        co_await sleep(0s);
        log->push_back("task cleaned up");
        throw CancelledError();
    }
}
}  // namespace

// R3 steps 1-4 (asyncio-rules P11): remaining tasks are cancelled and awaited BEFORE async
// generators are closed (shutdown_asyncgens), and a generator left suspended is closed then.
TEST(Run, ClosesAsyncGeneratorsAfterCancellingTasks) {
    Log log;
    std::optional<AsyncGenerator<int>> gen;  // outlives the run: only the shutdown closes it
    auto main_coro = [](Log* l, std::optional<AsyncGenerator<int>>* g) -> Coro<> {
        g->emplace(counting(l));
        auto first = co_await (*g)->next();
        if (!first || *first != 0) throw std::logic_error("generator did not start");
        (void)create_task(slow_to_die(l));
        co_await sleep(0s);
    };
    corio::run(main_coro(&log, &gen));
    EXPECT_EQ(log, (Log{"task cleaned up", "generator closed"}));
}

namespace {
AsyncGenerator<int> fidget() {
    for (;;) {
        co_yield 1;
        co_await sleep(1s);
    }
}

Coro<> spin(std::optional<AsyncGenerator<int>>* spinner) {
    spinner->emplace(fidget());
    bool cancelled = false;
    try {
        while (auto v = co_await (*spinner)->next()) (void)v;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) throw std::runtime_error("1/0");
}

struct FancyExit : std::runtime_error {
    FancyExit() : std::runtime_error("fancy exit") {}
};
}  // namespace

// R3 / test_runners.py::RunTests::test_asyncio_run_closes_gens_after_hanging_tasks_errors: a task
// cancelled while running inside a generator fails during shutdown; since tasks are cancelled
// before generators are closed, the generator is not "already running" when closed, and the
// only report is the task's failure; main's exception propagates.
TEST(Run, ClosesGeneratorsAfterHangingTasksErrors) {
    std::vector<ExceptionContext> reports;
    std::optional<AsyncGenerator<int>> spinner;
    Task<> lazyboy;
    auto main_coro = [](std::vector<ExceptionContext>* out, std::optional<AsyncGenerator<int>>* sp,
                        Task<>* lb) -> Coro<> {
        capture_reports(out);
        *lb = create_task(spin(sp), "lazyboy");
        co_await sleep(0s);  // spin has started and waits inside the generator's sleep
        throw FancyExit();
    };
    EXPECT_THROW(corio::run(main_coro(&reports, &spinner, &lazyboy)), FancyExit);
    ASSERT_TRUE(lazyboy);
    EXPECT_TRUE(lazyboy.done());
    ASSERT_TRUE(spinner.has_value());
    EXPECT_TRUE(spinner->done());
    ASSERT_EQ(reports.size(), 1u) << all_messages(reports);
    EXPECT_EQ(reports[0].message, "unhandled exception during corio::run() shutdown");
    EXPECT_EQ(reports[0].task_name, "lazyboy");
    EXPECT_EQ(what_of(reports[0].exception), "1/0");
    lazyboy = {};
}

namespace {
// Logs its cleanup, which takes a tick, after GeneratorExit.
AsyncGenerator<int> logged_inner(Log* log, std::string name) {
    bool closing = false;
    try {
        for (int i = 0;; ++i) co_yield i;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    co_await sleep(0s);
    log->push_back(name + " cleaned up");
    if (closing) throw GeneratorExit{};
}

// Re-yields an inner generator it owns, so that closing it drops the inner one mid-iteration.
AsyncGenerator<int> doubling(Log* log) {
    AsyncGenerator<int> inner = logged_inner(log, "inner");
    for (;;) {
        auto taking = inner.next();
        std::optional<int> v = co_await std::move(taking);
        if (!v) break;
        co_yield *v * 2;
    }
}

// Its cleanup leaves another generator early.
AsyncGenerator<int> cleanup_uses_a_generator(Log* log) {
    bool closing = false;
    try {
        co_yield 1;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    AsyncGenerator<int> helper = logged_inner(log, "helper");
    auto taking = helper.next();
    std::optional<int> v = co_await std::move(taking);
    log->push_back("outer cleanup used " + std::to_string(v.value_or(-1)));
    if (closing) throw GeneratorExit{};
}

AsyncGenerator<int> ignores_generator_exit(int* caught) {
    for (int i = 0;; ++i) {
        try {
            co_yield i;
        } catch (const GeneratorExit&) {
            ++*caught;
        }
    }
}
}  // namespace

// AG5: at shutdown, closing a generator drops the generator it iterates; that one is closed
// once, by one closer, and its cleanup runs (ASan: the frame is not freed under a closer).
TEST(Run, ShutdownClosesAGeneratorDroppedByAnotherOnesCleanup) {
    Log log;
    std::vector<ExceptionContext> reports;
    auto main_coro = [](Log* l, std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        AsyncGenerator<int> outer = doubling(l);
        auto taking = outer.next();
        std::optional<int> v = co_await std::move(taking);
        if (v != 0) throw std::logic_error("generator did not start");
    };  // outer dropped mid-iteration: its closer task is cancelled by the shutdown, unrun
    corio::run(main_coro(&log, &reports));
    EXPECT_EQ(log, (Log{"inner cleaned up"}));
    EXPECT_TRUE(reports.empty()) << all_messages(reports);

    Log log2;
    std::vector<ExceptionContext> reports2;
    auto main_coro2 = [](Log* l, std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        AsyncGenerator<int> outer = cleanup_uses_a_generator(l);
        auto taking = outer.next();
        std::optional<int> v = co_await std::move(taking);
        if (v != 1) throw std::logic_error("generator did not start");
    };
    corio::run(main_coro2(&log2, &reports2));
    EXPECT_EQ(log2, (Log{"outer cleanup used 0", "helper cleaned up"}));
    EXPECT_TRUE(reports2.empty()) << all_messages(reports2);
}

// AG5: a generator that ignores GeneratorExit is reported once, and the run ends (it was retried
// for ever).
TEST(Run, ShutdownReportsAGeneratorIgnoringGeneratorExitOnce) {
    int caught = 0;
    std::vector<ExceptionContext> reports;
    AsyncGenerator<int> stubborn = ignores_generator_exit(&caught);  // outlives the run
    auto main_coro = [](AsyncGenerator<int>* g, std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        auto taking = g->next();
        std::optional<int> v = co_await std::move(taking);
        if (v != 0) throw std::logic_error("generator did not start");
    };
    corio::run(main_coro(&stubborn, &reports));
    EXPECT_EQ(caught, 1);
    ASSERT_EQ(reports.size(), 1u) << all_messages(reports);
    EXPECT_EQ(reports[0].message, "an error occurred during closing of asynchronous generator");
    EXPECT_EQ(what_of(reports[0].exception), "async generator ignored GeneratorExit");
}

namespace {
Coro<> fails_at_once() {
    throw std::runtime_error("nobody looked");
    co_return;
}
}  // namespace

// F4 / D4: a failed task whose exception nobody retrieved is reported when its last handle goes,
// also when that is after its loop closed (the handle kept past corio::run()): to stderr, by the
// default handler, since the loop's own handler went with it.
TEST(Run, UnretrievedExceptionOfATaskKeptPastTheRunIsReported) {
    Task<> kept;
    auto main_coro = [](Task<>* out) -> Coro<> {
        *out = create_task(fails_at_once(), "kept-past-run");
        co_await sleep(0s);
    };
    corio::run(main_coro(&kept));
    ASSERT_TRUE(kept.done());
    ::testing::internal::CaptureStderr();
    kept = {};
    std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(printed.find("exception was never retrieved"), std::string::npos) << printed;
    EXPECT_NE(printed.find("kept-past-run"), std::string::npos) << printed;
    EXPECT_NE(printed.find("nobody looked"), std::string::npos) << printed;
}

// ---------------------------------------------------------------------------------------------
// Runner (R4)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<EventLoop*> loop_address() {
    co_await sleep(0s);
    co_return &get_running_loop();
}
}  // namespace

// R4 / test_runners.py::RunnerTests::test_run: several run() calls share one loop, and a task
// left pending by one run goes on in the next.
TEST(Runner, RunsSeveralCoroutinesOnOneLoop) {
    Runner runner;
    EventLoop* a = runner.run(loop_address());
    EventLoop* b = runner.run(loop_address());
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, &runner.get_loop());

    Log log;
    auto first = [](Log* l) -> Coro<> {
        (void)create_task(hang_forever(l), "background");
        co_await sleep(0s);
    };
    runner.run(first(&log));
    auto second = []() -> Coro<std::size_t> {
        std::size_t pending = 0;
        for (auto& t : all_tasks())
            if (t.name() == "background") ++pending;
        co_await sleep(0s);
        co_return pending;
    };
    EXPECT_EQ(runner.run(second()), 1u);  // still pending between runs
    EXPECT_TRUE(log.empty());
    runner.close();
    EXPECT_EQ(log, (Log{"hanging task cancelled"}));  // close() cancels it
}

// R4 / test_runners.py::RunnerTests::test_explicit_close, test_double_close: close() is
// idempotent; run() and get_loop() after it throw std::logic_error.
TEST(Runner, CloseIsIdempotentAndRunAfterCloseThrows) {
    Runner runner;
    EXPECT_EQ(runner.run(answer()), 42);
    runner.close();
    EXPECT_NO_THROW(runner.close());
    EXPECT_THROW(runner.run(answer()), std::logic_error);
    EXPECT_THROW(runner.get_loop(), std::logic_error);
}

// close() from inside its own loop is refused and changes nothing (asyncio raises before it
// marks the runner closed): it used to close the runner half-way, leaving its task to be
// destroyed pending instead of cancelled.
Runner* g_closing_runner = nullptr;

Coro<> hangs_until_cancelled(Log* log) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
        log->push_back("cancelled");
        throw;
    }
}

Coro<int> closes_its_own_runner(Log* log) {
    Task<> t = create_task(hangs_until_cancelled(log));  // outlives this run
    co_await sleep(0s);
    try {
        g_closing_runner->close();
    } catch (const std::logic_error&) {
        log->push_back("refused");
    }
    co_return 5;
}

TEST(Runner, CloseFromInsideItsOwnLoopIsRefusedAndChangesNothing) {
    Log log;
    Runner runner;
    g_closing_runner = &runner;
    EXPECT_EQ(runner.run(closes_its_own_runner(&log)), 5);
    EXPECT_EQ(log, (Log{"refused"}));
    EXPECT_EQ(runner.run(answer()), 42);  // still usable
    runner.close();
    EXPECT_EQ(log, (Log{"refused", "cancelled"}));
    g_closing_runner = nullptr;
}

// R4: a Runner never used closes cleanly, and close() before any run makes run() throw.
TEST(Runner, CloseBeforeAnyRun) {
    Runner runner;
    runner.close();
    EXPECT_THROW(runner.run(answer()), std::logic_error);
}
