// What the loop reports and restores: an exception handler that throws (the default handler
// reports it, then the original context; nothing leaves the loop), the default handler's stderr
// lines; close() restoring the signal dispositions of handlers still installed and refusing new
// ones; a task pending at close() reported with its name and call graph; an async generator
// dropped before it ever started, reported as never awaited in debug mode.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <signal.h>

#include <exception>
#include <source_location>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;

namespace {

// Where `part` starts in `text`, npos if absent.
std::size_t at(const std::string& text, const std::string& part) { return text.find(part); }

// The disposition of `sig` (SIG_DFL, SIG_IGN or a handler).
void (*disposition(int sig))(int) {
    struct sigaction sa {};
    ::sigaction(sig, nullptr, &sa);
    return sa.sa_handler;
}

// Sets `sig` to `handler` for one test and puts the previous action back.
class ScopedDisposition {
public:
    ScopedDisposition(int sig, void (*handler)(int)) : sig_(sig) {
        struct sigaction sa {};
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        ::sigaction(sig, &sa, &saved_);
    }
    ~ScopedDisposition() { ::sigaction(sig_, &saved_, nullptr); }
    ScopedDisposition(const ScopedDisposition&) = delete;
    ScopedDisposition& operator=(const ScopedDisposition&) = delete;

private:
    int sig_;
    struct sigaction saved_ {};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The exception handler and the default handler (loop.md:184-188)
// ---------------------------------------------------------------------------------------------

// loop.md:184-186: a throwing handler is reported by the default handler, then the original; nothing is thrown.
TEST(LoopExceptionHandler, AThrowingHandlerIsReportedThenTheOriginalContext) {
    EventLoop loop;
    loop.set_exception_handler([](EventLoop&, const ExceptionContext&) { throw std::runtime_error("handler broke"); });
    ::testing::internal::CaptureStderr();
    EXPECT_NO_THROW(loop.call_exception_handler(
        {"original report", std::make_exception_ptr(std::runtime_error("original error")), "victim", {}, {}}));
    const std::string printed = ::testing::internal::GetCapturedStderr();
    const std::size_t handler_failed = at(printed, "corio: Unhandled error in exception handler");
    const std::size_t why = at(printed, "exception: handler broke");
    const std::size_t original = at(printed, "corio: original report");
    ASSERT_NE(handler_failed, std::string::npos) << printed;
    ASSERT_NE(why, std::string::npos) << printed;
    ASSERT_NE(original, std::string::npos) << printed;
    EXPECT_LT(handler_failed, why) << printed;
    EXPECT_LT(why, original) << printed;
    EXPECT_NE(printed.find("task: victim", original), std::string::npos) << printed;
    EXPECT_NE(printed.find("exception: original error", original), std::string::npos) << printed;
    loop.close();
}

// loop.md:186: a callback and a handler that both throw: nothing leaves the running loop, which goes on.
TEST(LoopExceptionHandler, AThrowingHandlerDoesNotStopTheLoop) {
    EventLoop loop;
    int handler_calls = 0;
    loop.set_exception_handler([&handler_calls](EventLoop&, const ExceptionContext&) {
        ++handler_calls;
        throw std::runtime_error("handler broke");
    });
    bool later_ran = false;
    loop.call_soon([] { throw std::runtime_error("callback broke"); });
    loop.call_soon([&later_ran] { later_ran = true; });
    ::testing::internal::CaptureStderr();
    EXPECT_NO_THROW(loop.run_until([&later_ran] { return later_ran; }));
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(handler_calls, 1);
    EXPECT_TRUE(later_ran);
    const std::size_t handler_failed = at(printed, "corio: Unhandled error in exception handler");
    const std::size_t original = at(printed, "corio: Exception in callback");
    ASSERT_NE(handler_failed, std::string::npos) << printed;
    ASSERT_NE(original, std::string::npos) << printed;
    EXPECT_LT(handler_failed, original) << printed;
    EXPECT_NE(printed.find("exception: callback broke", original), std::string::npos) << printed;
    loop.close();
}

const std::uint_least32_t forgotten_line = std::source_location::current().line() + 1;
Coro<int> forgotten() { co_return 1; }

Coro<> forgets_an_await(std::vector<ExceptionContext>* reports) {
    get_running_loop().set_exception_handler([reports](EventLoop&, const ExceptionContext& c) { reports->push_back(c); });
    {
        Coro<int> never = forgotten();
    }
    co_return;
}

// loop.md:187-188: the default handler writes message, task, creation site, exception, call graph to stderr.
TEST(LoopExceptionHandler, DefaultHandlerWritesEveryPartOfTheContextToStderr) {
    const std::source_location here = std::source_location::current();
    ExceptionContext c{"something went wrong", std::make_exception_ptr(std::runtime_error("the cause")), "worker-7",
                       here, "  * Task worker-7 (pending)"};
    ::testing::internal::CaptureStderr();
    EventLoop::default_exception_handler(c);
    const std::string printed = ::testing::internal::GetCapturedStderr();
    const std::string site = std::string(here.file_name()) + ":" + std::to_string(here.line());
    EXPECT_EQ(at(printed, "corio: something went wrong\n"), 0u) << printed;
    EXPECT_NE(at(printed, "\n  task: worker-7\n"), std::string::npos) << printed;
    EXPECT_NE(at(printed, "\n  created at: " + site), std::string::npos) << printed;
    EXPECT_NE(at(printed, "\n  exception: the cause\n"), std::string::npos) << printed;
    EXPECT_NE(at(printed, "\n  * Task worker-7 (pending)\n"), std::string::npos) << printed;
}

// A never-awaited coroutine's location is its definition (C++ records no call site): the
// report said "created at" there, which reads as the line of the forgotten call.
TEST(LoopExceptionHandler, ANeverAwaitedCoroutineIsReportedWhereItIsDefined) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    options.slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    corio::run(forgets_an_await(&reports), std::move(options));
    ASSERT_EQ(reports.size(), 1u);
    const ExceptionContext& c = reports[0];
    EXPECT_NE(c.message.find("was never awaited"), std::string::npos) << c.message;
    ASSERT_TRUE(c.location.has_value());
    EXPECT_EQ(c.location->line(), forgotten_line);
    EXPECT_TRUE(c.location_is_definition);
    EXPECT_EQ(c.task_name, "main");
    ::testing::internal::CaptureStderr();
    EventLoop::default_exception_handler(c);
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(at(printed, "\n  defined at: "), std::string::npos) << printed;
    EXPECT_EQ(at(printed, "created at"), std::string::npos) << printed;
}

Coro<int> finishes() { co_return 1; }

Coro<Task<int>> start_and_finish() {
    Task<int> t = create_task(finishes());
    co_await t;
    co_return t;
}

// debug.md: format_call_graph(task) needs no loop, and a finished task says so. It called the
// task "pending" and, with the loop gone, read the freed loop (ASan: stack-use-after-scope).
TEST(CallGraph, AFinishedTaskIsShownDoneAfterItsLoopIsGone) {
    Task<int> done;
    {
        Runner runner;
        done = runner.run(start_and_finish());
    }
    const std::string graph = format_call_graph(*done.state());
    EXPECT_NE(graph.find("(done)"), std::string::npos) << graph;
    EXPECT_EQ(graph.find("pending"), std::string::npos) << graph;
}

// ---------------------------------------------------------------------------------------------
// Signal handlers and close() (loop.md:139, 207)
// ---------------------------------------------------------------------------------------------

// loop.md:139: close() restores the dispositions of handlers still installed (SIG_IGN, SIG_DFL) and frees them.
TEST(LoopCloseSignals, CloseRestoresTheDispositionsOfHandlersStillInstalled) {
    ScopedDisposition usr1(SIGUSR1, SIG_IGN);
    ScopedDisposition usr2(SIGUSR2, SIG_DFL);
    {
        EventLoop loop;
        loop.add_signal_handler(SIGUSR1, [] {});
        loop.add_signal_handler(SIGUSR2, [] {});
        EXPECT_NE(disposition(SIGUSR1), SIG_IGN);
        EXPECT_NE(disposition(SIGUSR2), SIG_DFL);
        loop.close();
        EXPECT_EQ(disposition(SIGUSR1), SIG_IGN);
        EXPECT_EQ(disposition(SIGUSR2), SIG_DFL);
    }
    EventLoop other;  // the signals are free for another loop again
    EXPECT_NO_THROW(other.add_signal_handler(SIGUSR1, [] {}));
    EXPECT_TRUE(other.remove_signal_handler(SIGUSR1));
    other.close();
}

namespace {
Coro<> installs_and_keeps_a_handler() {
    get_running_loop().add_signal_handler(SIGUSR1, [] {});
    auto tick = sleep(0s);
    co_await std::move(tick);
}
}  // namespace

// loop.md:139: a handler added inside corio::run and never removed is undone when the run closes its loop.
TEST(LoopCloseSignals, RunRestoresAHandlerTheApplicationLeftInstalled) {
    ScopedDisposition usr1(SIGUSR1, SIG_IGN);
    corio::run(installs_and_keeps_a_handler());
    EXPECT_EQ(disposition(SIGUSR1), SIG_IGN);
}

// loop.md:207: add_signal_handler on a closed loop throws std::logic_error and installs nothing.
TEST(LoopCloseSignals, AddSignalHandlerOnAClosedLoopThrowsLogicError) {
    ScopedDisposition usr1(SIGUSR1, SIG_IGN);
    EventLoop loop;
    loop.close();
    EXPECT_THROW(loop.add_signal_handler(SIGUSR1, [] {}), std::logic_error);
    EXPECT_EQ(disposition(SIGUSR1), SIG_IGN);
}

// ---------------------------------------------------------------------------------------------
// A task pending at close() (loop.md:137-139, 143; API.md:228)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> inner_wait(Event* never) {
    auto waiting = never->wait();
    co_await std::move(waiting);
}

Coro<> outer_wait(Event* never, bool* waiting) {
    *waiting = true;
    Coro<> inner = inner_wait(never);
    co_await std::move(inner);
}
}  // namespace

// loop.md:137-139, 143: a task pending at close(): "Task was destroyed but it is pending!", name, call graph.
TEST(LoopClosePending, APendingTaskIsReportedWithItsNameAndCallGraph) {
    Event never;
    bool waiting = false;
    std::vector<ExceptionContext> reports;
    Task<> stuck;
    {
        EventLoop loop;
        loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext& c) { reports.push_back(c); });
        loop.call_soon([&] { stuck = create_task(outer_wait(&never, &waiting), "stuck"); });
        loop.run_until([&waiting] { return waiting; });  // its first step ran: it waits on `never`
        loop.close();
    }
    ASSERT_EQ(reports.size(), 1u) << all_messages(reports);
    EXPECT_EQ(reports[0].message, "Task was destroyed but it is pending!");
    EXPECT_EQ(reports[0].task_name, "stuck");
    const std::string& graph = reports[0].call_graph;
    ASSERT_FALSE(graph.empty());
    EXPECT_NE(graph.find("Task stuck"), std::string::npos) << graph;
    const std::size_t outer = graph.find("outer_wait");
    const std::size_t inner = graph.find("inner_wait");
    EXPECT_NE(outer, std::string::npos) << graph;
    EXPECT_NE(inner, std::string::npos) << graph;
    EXPECT_LT(outer, inner) << "outermost frame first:\n" << graph;
    ASSERT_TRUE(stuck.done());
    EXPECT_TRUE(stuck.cancelled());
}

// API.md:228, loop.md:187-188: with no handler set, that report goes to stderr with name and call graph.
TEST(LoopClosePending, WithoutAHandlerThePendingTaskGoesToStderr) {
    Event never;
    bool waiting = false;
    Task<> stuck;
    ::testing::internal::CaptureStderr();
    {
        EventLoop loop;
        loop.call_soon([&] { stuck = create_task(outer_wait(&never, &waiting), "stderr-stuck"); });
        loop.run_until([&waiting] { return waiting; });
        loop.close();
    }
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(printed.find("corio: Task was destroyed but it is pending!"), std::string::npos) << printed;
    EXPECT_NE(printed.find("task: stderr-stuck"), std::string::npos) << printed;
    EXPECT_NE(printed.find("* Task stderr-stuck"), std::string::npos) << printed;
    EXPECT_NE(printed.find("inner_wait"), std::string::npos) << printed;
}

// ---------------------------------------------------------------------------------------------
// An async generator never started (generator.md:51-52)
// ---------------------------------------------------------------------------------------------

namespace {
AsyncGenerator<int> never_started_numbers() {
    for (int i = 0;; ++i) co_yield i;
}

std::vector<std::string> never_awaited_messages(const std::vector<ExceptionContext>& reports) {
    std::vector<std::string> out;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) out.push_back(r.message);
    return out;
}
}  // namespace

// generator.md:51-52: in debug mode a generator dropped before it started is reported as never awaited.
CORIO_TEST(GeneratorNeverStarted, DroppedUnstartedInDebugModeIsReportedAsNeverAwaited) {
    corio_test::CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    {
        AsyncGenerator<int> numbers = never_started_numbers();
    }
    auto tick = sleep(0s);
    co_await std::move(tick);
    get_running_loop().set_debug(false);
    std::vector<std::string> found = never_awaited_messages(captured.reports);
    CO_ASSERT_EQ(found.size(), 1u);
    EXPECT_NE(found[0].find("never_started_numbers"), std::string::npos) << found[0];
    EXPECT_EQ(captured.reports.size(), 1u) << all_messages(captured.reports);
}

// generator.md:51-52: out of debug mode the same drop reports nothing.
CORIO_TEST(GeneratorNeverStarted, DroppedUnstartedOutOfDebugModeIsNotReported) {
    corio_test::CapturedReports captured;
    get_running_loop().set_debug(false);
    {
        AsyncGenerator<int> numbers = never_started_numbers();
    }
    auto tick = sleep(0s);
    co_await std::move(tick);
    EXPECT_TRUE(captured.reports.empty()) << all_messages(captured.reports);
}

namespace {
Coro<> fails_after_a_tick() {
    auto tick = sleep(0s);
    co_await std::move(tick);
    throw std::runtime_error("boom");
}
Coro<> awaits_the_task(Task<> t) { co_await t; }
Coro<> awaits_it_shielded(Task<> t) {
    auto shielded = shield(t);
    co_await std::move(shielded);
}
Coro<> awaits_the_future(Future<int> f) { co_await f; }

// A waiter made by `make` from a task that fails after a tick, and cancelled by that task's done
// callback: after the failure woke it, before it resumes.
template <class Make>
Task<> waiter_cancelled_as_it_is_woken(Make make) {
    Task<> failing = create_task(fails_after_a_tick());
    Task<> waiter = create_task(make(failing));
    failing.add_done_callback([waiter]() mutable { waiter.cancel(); });
    return waiter;
}

// The waiter ends cancelled, and nothing is reported (by a tick later, when a report would come).
Coro<> expect_cancelled_quietly(Task<> waiter, const corio_test::CapturedReports* captured) {
    bool cancelled = false;
    try {
        co_await waiter;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    auto tick = sleep(0s);
    co_await std::move(tick);
    EXPECT_TRUE(captured->reports.empty()) << all_messages(captured->reports);
}
}  // namespace

// The awaited task failed and its waiter is cancelled before it resumes: the waiter gets
// CancelledError, and the failure counts as retrieved (asyncio's task.cancel() calls cancel()
// on the done future it waits for, which clears its log flag). It was reported as "Task
// exception was never retrieved".
CORIO_TEST(NeverRetrieved, AFailureWhoseWaiterWasCancelledBeforeItResumedIsNotReported) {
    corio_test::CapturedReports captured;
    Coro<> checking = expect_cancelled_quietly(waiter_cancelled_as_it_is_woken(awaits_the_task), &captured);
    co_await std::move(checking);
}

// The same through shield(): asyncio's shield has read the inner task's exception in its done
// callback when the cancellation comes.
CORIO_TEST(NeverRetrieved, AShieldedFailureWhoseWaiterWasCancelledBeforeItResumedIsNotReported) {
    corio_test::CapturedReports captured;
    Coro<> checking = expect_cancelled_quietly(waiter_cancelled_as_it_is_woken(awaits_it_shielded), &captured);
    co_await std::move(checking);
}

// The same with a Future that fails while the task waits on it ("Future exception was never
// retrieved").
CORIO_TEST(NeverRetrieved, AFutureFailureWhoseWaiterWasCancelledBeforeItResumedIsNotReported) {
    corio_test::CapturedReports captured;
    Task<> waiter;
    {
        Future<int> f = get_running_loop().create_future<int>();
        waiter = create_task(awaits_the_future(f));
        auto tick = sleep(0s);
        co_await std::move(tick);
        f.set_exception(std::runtime_error("boom"));
        waiter.cancel();
    }
    Coro<> checking = expect_cancelled_quietly(waiter, &captured);
    co_await std::move(checking);
}
