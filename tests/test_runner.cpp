// corio::run and corio::Runner: results and exceptions, nesting, the shutdown order of R3
// (tasks cancelled and awaited before async generators are closed; failures during shutdown
// reported), Runner's several runs on one loop and close(), and debug mode (slow steps,
// never-awaited coroutines, call graphs).
// Ports CPython's Lib/test/test_asyncio/test_runners.py and test_base_events.py (slow callbacks);
// each test names the CPython test (or the asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

// Installs a handler on the running loop that copies every report into `out` (which outlives
// the loop: the handler stays for the shutdown, when the loop is gone it is gone too).
void capture_reports(std::vector<ExceptionContext>* out) {
    get_running_loop().set_exception_handler(
        [out](EventLoop&, const ExceptionContext& c) { out->push_back(c); });
}

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

std::string all_messages(const std::vector<ExceptionContext>& reports) {
    std::string s;
    for (const auto& r : reports) s += "[" + r.message + "] ";
    return s;
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

Coro<int> closes_its_own_runner(Log* log) {
    auto hang = [log]() -> Coro<> {
        try {
            co_await sleep(1h);
        } catch (const CancelledError&) {
            log->push_back("cancelled");
            throw;
        }
    };
    Task<> t = create_task(hang());
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

// ---------------------------------------------------------------------------------------------
// Debug mode (D1, D2, D5)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> busy_step(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
    }
    co_return;
}

Coro<> debug_main(std::vector<ExceptionContext>* out) {
    capture_reports(out);
    Task<> t = create_task(busy_step(30ms), "sloth");
    co_await t;
}
}  // namespace

// D2 / test_base_events.py::BaseEventLoopTests::test_log_slow_callbacks: in debug mode a task
// step longer than slow_callback_duration is reported with the task's name. (The one test that
// needs real time: the step busy-waits; only the report is asserted, never a duration.)
TEST(RunDebug, SlowStepIsReportedWithTheTaskName) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    options.slow_callback_duration = 10ms;
    corio::run(debug_main(&reports), std::move(options));
    bool found = false;
    for (const auto& r : reports) {
        if (r.task_name != "sloth") continue;
        found = true;
        EXPECT_NE(r.message.find("Executing <Task sloth> took"), std::string::npos) << r.message;
        EXPECT_TRUE(r.location.has_value());
    }
    EXPECT_TRUE(found) << all_messages(reports);
}

// D2: a plain callback (call_soon, call_later) that holds the loop is reported too, as asyncio
// reports every slow handle. A zero threshold makes every callback slow: no real time needed.
TEST(RunDebug, SlowCallbackIsReported) {
    std::vector<ExceptionContext> reports;
    auto main_coro = [](std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        EventLoop& loop = get_running_loop();
        loop.set_debug(true);
        loop.slow_callback_duration = std::chrono::nanoseconds(0);
        bool ran = false;
        loop.call_soon([&ran] { ran = true; });
        co_await sleep(0s);
        loop.set_debug(false);
        if (!ran) throw std::logic_error("the callback did not run");
    };
    corio::run(main_coro(&reports));
    bool found = false;
    for (const auto& r : reports) found = found || r.message.find("Executing <Handle> took") != std::string::npos;
    EXPECT_TRUE(found) << all_messages(reports);
}

// D2: debug mode off, no slow-step report.
TEST(RunDebug, NoSlowStepReportWithoutDebug) {
    std::vector<ExceptionContext> reports;
    auto main_coro = [](std::vector<ExceptionContext>* out) -> Coro<> {
        get_running_loop().set_debug(false);
        get_running_loop().slow_callback_duration = 10ms;
        Coro<> inner = debug_main(out);
        co_await std::move(inner);
    };
    corio::run(main_coro(&reports));
    EXPECT_TRUE(reports.empty()) << all_messages(reports);
}

namespace {
Coro<int> forgotten_coroutine() { co_return 1; }

Coro<> forget_one(std::vector<ExceptionContext>* out, bool debug) {
    capture_reports(out);
    get_running_loop().set_debug(debug);
    {
        Coro<int> c = forgotten_coroutine();
    }
    co_await sleep(0s);
}
}  // namespace

// D5 / API.md: a Coro destroyed without ever running is reported in debug mode ("coroutine ...
// was never awaited").
TEST(RunDebug, NeverAwaitedCoroIsReportedInDebugMode) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    corio::run(forget_one(&reports, true), std::move(options));
    std::vector<std::string> never_awaited;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) never_awaited.push_back(r.message);
    EXPECT_EQ(never_awaited.size(), 1u) << all_messages(reports);
}

// D5 / API.md: the report names the coroutine function ("coroutine 'forgotten_coroutine' ...").
TEST(RunDebug, NeverAwaitedReportNamesTheCoroutineFunction) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    corio::run(forget_one(&reports, true), std::move(options));
    std::vector<std::string> never_awaited;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) never_awaited.push_back(r.message);
    ASSERT_EQ(never_awaited.size(), 1u) << all_messages(reports);
    EXPECT_NE(never_awaited[0].find("forgotten_coroutine"), std::string::npos) << never_awaited[0];
}

// D5: without debug mode, no report.
TEST(RunDebug, NeverAwaitedCoroIsSilentWithoutDebug) {
    std::vector<ExceptionContext> reports;
    corio::run(forget_one(&reports, false));
    EXPECT_TRUE(reports.empty()) << all_messages(reports);
}

namespace {
Coro<int> handles_its_cancel_and_returns_5() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        current_task().uncancel();
    }
    co_return 5;
}
Coro<int> awaits_a_child() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    int v = co_await child;
    co_return v;
}
Coro<int> swallows_its_cancel() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
    }
    co_return 1;
}
Coro<> cancel_and_collect(std::vector<ExceptionContext>* out, Coro<int> (*body)(), std::string name) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(body(), name);
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
}
std::size_t swallowed_reports(const std::vector<ExceptionContext>& reports, const std::string& task) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("Task " + task + " returned normally although") != std::string::npos) ++n;
    return n;
}
}  // namespace

// D4: a task that catches its CancelledError and returns normally is reported in debug mode.
TEST(RunDebug, SwallowedCancellationIsReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_collect(&reports, swallows_its_cancel, "stubborn"));
    EXPECT_EQ(swallowed_reports(reports, "stubborn"), 1u) << all_messages(reports);
}

// D4: cancelling a task passes the cancel on to the task it awaits (T4); when that child handles
// it and returns a value, nothing was thrown into the parent, and the parent is not reported.
TEST(RunDebug, ACancelPassedOnToAChildThatHandledItIsNotASwallowedCancellation) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_collect(&reports, awaits_a_child, "parent"));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 0u) << all_messages(reports);
}

namespace {
// The task cancels itself while running: the cancel waits for its next await, which is on a
// child; the child handles it and returns a value.
Coro<int> cancels_itself_then_awaits_a_child() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    co_await sleep(0s);
    co_await sleep(0s);  // the child sleeps
    current_task().cancel();
    int v = co_await child;
    co_return v;
}
Coro<> run_and_collect(std::vector<ExceptionContext>* out, Coro<int> (*body)(), std::string name) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(body(), name);
    int v = co_await t;
    EXPECT_EQ(v, 5);
}
}  // namespace

// D4: a pending cancel passed on to the child at the await that delivers it counts as passed
// on, as one that arrives while the task already waits: the child handled it.
TEST(RunDebug, APendingCancelPassedOnAtTheNextAwaitIsNotASwallowedCancellation) {
    std::vector<ExceptionContext> reports;
    corio::run(run_and_collect(&reports, cancels_itself_then_awaits_a_child, "parent"));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 0u) << all_messages(reports);
}

namespace {
// The first cancel goes to the child, which handles it; the second reaches this frame's own
// sleep, and is swallowed here.
Coro<int> child_absorbs_then_swallows() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    int v = co_await child;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
    }
    co_return v;
}
Coro<> cancel_twice_and_collect(std::vector<ExceptionContext>* out) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(child_absorbs_then_swallows(), "parent");
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();  // passed on to the child
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();  // delivered into the parent's sleep
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
}
}  // namespace

// D4: a cancel the child absorbed does not hide a later one the parent swallows itself.
TEST(RunDebug, ASwallowAfterACancelAChildHandledIsStillReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_twice_and_collect(&reports));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 1u) << all_messages(reports);
    // It counts only the request this frame swallowed, not the one the child handled.
    EXPECT_NE(all_messages(reports).find("requested 1 time(s)"), std::string::npos) << all_messages(reports);
}

namespace {
std::size_t still_running_reports(const std::vector<ExceptionContext>& reports, const std::string& task) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("Task " + task + " is still running") != std::string::npos) ++n;
    return n;
}

// The guides' worker loop that swallows its cancellation: it never returns, so the report at
// its return never comes (and a shutdown waiting for it hangs without a word).
Coro<> swallowing_worker(const bool* stop) {
    while (!*stop) {
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
        }
    }
}
// Cleans up for `cleanup` after its cancellation, then lets it go on: no swallow.
Coro<> cleans_up_then_rethrows(Clock::duration cleanup) {
    bool cancelled = false;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await sleep(cleanup);
        throw CancelledError();
    }
}
// Takes its cancellation back, as asyncio's uncancel() allows, and goes on working.
Coro<> uncancels_and_goes_on() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        current_task().uncancel();
    }
    co_await sleep(5s);
}

Coro<> cancel_and_watch(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    bool stop = false;
    Task<> worker = create_task(swallowing_worker(&stop), "worker");
    Task<> honest = create_task(cleans_up_then_rethrows(500ms), "honest");
    Task<> forgiven = create_task(uncancels_and_goes_on(), "forgiven");
    co_await sleep(0s);
    for (Task<>* t : {&worker, &honest, &forgiven}) t->cancel();
    co_await sleep(3s);  // virtual time
    EXPECT_FALSE(worker.done());
    EXPECT_TRUE(honest.cancelled());
    EXPECT_EQ(still_running_reports(*out, "worker"), 1u) << all_messages(*out);
    stop = true;
    worker.cancel();
    try {
        co_await worker;
    } catch (const CancelledError&) {
    }
    co_await forgiven;
}
}  // namespace

// D4: a task still running a second after a CancelledError of its own cancellation was thrown
// into it, without uncancel(), is reported with where it waits: a worker loop that swallows it
// never returns, so the report at its return would never come. A clean-up that takes time and
// then rethrows, or an uncancel(), is not reported.
TEST(RunDebug, ATaskStillRunningAfterItsCancellationIsReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_watch(&reports));
    EXPECT_EQ(still_running_reports(reports, "worker"), 1u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "honest"), 0u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "forgiven"), 0u) << all_messages(reports);
    for (const auto& r : reports)
        if (r.message.find("Task worker is still running") != std::string::npos) {
            EXPECT_NE(r.call_graph.find("swallowing_worker"), std::string::npos) << r.call_graph;
        }
}

namespace {
// A child that takes three seconds to wind down once cancelled, then lets the cancellation go.
Coro<> slow_to_wind_down() { return cleans_up_then_rethrows(3s); }
Coro<> waits_in_a_group() {
    auto body = [](TaskGroup& g) -> Coro<> {
        g.create_task(slow_to_wind_down(), "slow child");
        co_await sleep(10s);
    };
    Coro<> grouping = task_group(body);
    co_await std::move(grouping);
}
Coro<> waits_in_gather() {
    Task<> a = create_task(slow_to_wind_down(), "slow child");
    auto gathering = gather(a);
    co_await std::move(gathering);
}
Coro<> cancel_the_waiting_parents(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<> in_group = create_task(waits_in_a_group(), "group parent");
    Task<> in_gather = create_task(waits_in_gather(), "gather parent");
    co_await sleep(0s);
    in_group.cancel();
    in_gather.cancel();
    for (Task<>* t : {&in_group, &in_gather}) {
        try {
            co_await *t;
        } catch (const CancelledError&) {
        }
    }
}
}  // namespace

// D4: a task whose CancelledError corio's own machinery caught to wait for its children (a
// TaskGroup's exit, gather) is not taken for one that swallowed it, however long they take.
TEST(RunDebug, AParentWaitingForItsChildrenToWindDownIsNotReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_the_waiting_parents(&reports));
    EXPECT_EQ(still_running_reports(reports, "group parent"), 0u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "gather parent"), 0u) << all_messages(reports);
    // The slow children are cleaning up themselves, for three seconds: they may be reported.
}

// ---------------------------------------------------------------------------------------------
// Call graphs (API.md Debug mode; asyncio.capture_call_graph / print_call_graph)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> graph_leaf(Future<>* f) { co_await *f; }
Coro<> graph_middle(Future<>* f) {
    Coro<> c = graph_leaf(f);
    co_await std::move(c);
}
Coro<> graph_outer(Future<>* f) {
    Coro<> c = graph_middle(f);
    co_await std::move(c);
}

const TaskInfo* find_task(const std::vector<TaskInfo>& graph, const std::string& name) {
    for (const auto& t : graph)
        if (t.name == name) return &t;
    return nullptr;
}
}  // namespace

// capture_call_graph(): every pending task of the loop with its await chain (one frame per
// coroutine, outermost first) and, when the loop keeps task statistics (debug mode,
// introspection), where it was created; the running task is "running"; done tasks are not
// listed.
CORIO_TEST(CallGraph, CaptureShowsEveryPendingTaskWithItsAwaitChain) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    loop.keep_task_stats(true);
    Task<> t = create_task(graph_outer(&f), "walker");
    loop.keep_task_stats(false);
    bool debug = loop.get_debug();  // CORIO_DEBUG=1 keeps statistics too
    loop.set_debug(false);
    Task<> plain = create_task(graph_outer(&f), "plain");
    loop.set_debug(debug);
    co_await sleep(0s);
    std::vector<TaskInfo> graph = capture_call_graph();
    EXPECT_EQ(graph.size(), 3u);
    const TaskInfo* walker = find_task(graph, "walker");
    CO_ASSERT_TRUE(walker != nullptr);
    EXPECT_EQ(walker->state, "pending");
    EXPECT_NE(walker->created_file.find("test_runner.cpp"), std::string::npos) << walker->created_file;
    EXPECT_GT(walker->created_line, 0u);
    // Like asyncio's _source_traceback, the creation site costs a task nothing unless asked for.
    const TaskInfo* unrecorded = find_task(graph, "plain");
    CO_ASSERT_TRUE(unrecorded != nullptr);
    EXPECT_EQ(unrecorded->created_file, "");
    EXPECT_EQ(unrecorded->created_line, 0u);
    EXPECT_EQ(unrecorded->frames.size(), 3u);
    EXPECT_EQ(walker->cancelling, 0);
    EXPECT_EQ(walker->frames.size(), 3u);
    const TaskInfo* me = find_task(graph, current_task().name());
    CO_ASSERT_TRUE(me != nullptr);
    EXPECT_EQ(me->state, "running");

    t.cancel();  // cancelling() shows in the graph until the task has handled it
    std::vector<TaskInfo> cancelling = capture_call_graph();
    const TaskInfo* w2 = find_task(cancelling, "walker");
    CO_ASSERT_TRUE(w2 != nullptr);
    EXPECT_EQ(w2->cancelling, 1);
    bool cancelled = false;
    try {
        co_await t;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    plain.cancel();
    auto settled = wait(std::vector<Task<>>{plain});
    co_await std::move(settled);
    std::vector<TaskInfo> after = capture_call_graph();
    EXPECT_EQ(find_task(after, "walker"), nullptr);
    EXPECT_EQ(after.size(), 1u);
}

// capture_call_graph() names each frame by its coroutine function, with its file and line.
CORIO_TEST(CallGraph, CaptureNamesEachFrameByItsCoroutineFunction) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "walker");
    co_await sleep(0s);
    std::vector<TaskInfo> graph = capture_call_graph();
    const TaskInfo* walker = find_task(graph, "walker");
    CO_ASSERT_TRUE(walker != nullptr);
    CO_ASSERT_EQ(walker->frames.size(), 3u);
    EXPECT_NE(walker->frames[0].function.find("graph_outer"), std::string::npos) << walker->frames[0].function;
    EXPECT_NE(walker->frames[1].function.find("graph_middle"), std::string::npos) << walker->frames[1].function;
    EXPECT_NE(walker->frames[2].function.find("graph_leaf"), std::string::npos) << walker->frames[2].function;
    EXPECT_NE(walker->frames[2].file.find("test_runner.cpp"), std::string::npos) << walker->frames[2].file;
    EXPECT_GT(walker->frames[2].line, 0u);
    f.set_result();
    co_await t;
}

// print_call_graph(out): the same as text, each task by name.
CORIO_TEST(CallGraph, PrintShowsEveryPendingTaskByName) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "printed-walker");
    co_await sleep(0s);
    std::ostringstream out;
    print_call_graph(out);
    const std::string text = out.str();
    EXPECT_NE(text.find("printed-walker"), std::string::npos) << text;
    EXPECT_NE(text.find(current_task().name()), std::string::npos) << text;
    f.set_result();
    co_await t;
    std::ostringstream out2;
    print_call_graph(out2);
    EXPECT_EQ(out2.str().find("printed-walker"), std::string::npos) << out2.str();
}

// print_call_graph(out): each frame by its coroutine function's name, outermost first.
CORIO_TEST(CallGraph, PrintShowsTheFunctionOfEachFrameInOrder) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "printed-walker");
    co_await sleep(0s);
    std::ostringstream out;
    print_call_graph(out);
    const std::string text = out.str();
    const auto task_pos = text.find("printed-walker");
    const auto outer_pos = text.find("graph_outer", task_pos == std::string::npos ? 0 : task_pos);
    const auto middle_pos = text.find("graph_middle", outer_pos == std::string::npos ? 0 : outer_pos);
    const auto leaf_pos = text.find("graph_leaf", middle_pos == std::string::npos ? 0 : middle_pos);
    EXPECT_NE(task_pos, std::string::npos) << text;
    EXPECT_NE(outer_pos, std::string::npos) << text;
    EXPECT_NE(middle_pos, std::string::npos) << text;
    EXPECT_NE(leaf_pos, std::string::npos) << text;
    f.set_result();
    co_await t;
}
