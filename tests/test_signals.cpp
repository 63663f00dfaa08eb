// Signal handlers run on the loop, never inside the OS-level handler; corio::run turns SIGINT
// into a cancellation of the main task.
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

using namespace corio;
using namespace std::chrono_literals;

namespace {
// Waits for `ev`, bounded: a lost signal fails the test instead of hanging it.
Coro<> wait_bounded(Event* ev) {
    auto waiting = [ev]() -> Coro<> { co_await ev->wait(); };
    Coro<> limited = wait_for(waiting(), 10s);
    co_await std::move(limited);
}
}  // namespace

CORIO_TEST(Signals, HandlerRunsOnTheLoopAndCanBeRemoved) {
    EventLoop& loop = get_running_loop();
    int seen = 0;
    Event fired;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++seen;
        fired.set();
    });
    ::raise(SIGUSR1);
    // raise() ran the OS-level handler synchronously; the loop-level one has not run yet.
    EXPECT_EQ(seen, 0);
    co_await wait_bounded(&fired);
    EXPECT_EQ(seen, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
}

CORIO_TEST(Signals, HandlerRunsOnTheLoopThread) {
    EventLoop& loop = get_running_loop();
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    Event fired;
    loop.add_signal_handler(SIGUSR2, [&] {
        ran_on = std::this_thread::get_id();
        fired.set();
    });
    // Sent from another thread to the whole process: whichever thread the kernel picks, the
    // handler runs on the loop's.
    std::thread sender([] { ::kill(::getpid(), SIGUSR2); });
    sender.join();
    co_await wait_bounded(&fired);
    EXPECT_EQ(ran_on, loop_thread);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR2));
}

CORIO_TEST(Signals, TwoSignalsEachReachTheirOwnHandler) {
    EventLoop& loop = get_running_loop();
    int usr1 = 0, usr2 = 0;
    Event got1, got2;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++usr1;
        got1.set();
    });
    loop.add_signal_handler(SIGUSR2, [&] {
        ++usr2;
        got2.set();
    });
    ::raise(SIGUSR2);
    ::raise(SIGUSR1);
    co_await wait_bounded(&got1);
    co_await wait_bounded(&got2);
    EXPECT_EQ(usr1, 1);
    EXPECT_EQ(usr2, 1);
    // One more of each, one after the other: each arrival runs its handler once more.
    got1.clear();
    ::raise(SIGUSR1);
    co_await wait_bounded(&got1);
    EXPECT_EQ(usr1, 2);
    EXPECT_EQ(usr2, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR2));
}

CORIO_TEST(Signals, SameSignalSeveralTimesRunsTheHandlerEachTime) {
    EventLoop& loop = get_running_loop();
    int seen = 0;
    Event fired;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++seen;
        fired.set();
    });
    for (int i = 1; i <= 5; ++i) {
        fired.clear();
        ::raise(SIGUSR1);
        co_await wait_bounded(&fired);
        EXPECT_EQ(seen, i);
    }
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
}

CORIO_TEST(Signals, AddingAgainReplacesTheHandler) {
    EventLoop& loop = get_running_loop();
    int first = 0, second = 0;
    Event fired;
    loop.add_signal_handler(SIGUSR1, [&] { ++first; });
    loop.add_signal_handler(SIGUSR1, [&] {
        ++second;
        fired.set();
    });
    ::raise(SIGUSR1);
    co_await wait_bounded(&fired);
    EXPECT_EQ(first, 0);
    EXPECT_EQ(second, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
}

// Removing the last handler stops the loop's read of its signal pipe (so that an idle loop
// keeps nothing in the backend); a handler added again at once, before that read's cancel has
// come back, is still told of its signal. (No Ctrl-C watch: it would keep the read going.)
namespace {
Coro<std::size_t> add_remove_add_again() {
    EventLoop& loop = get_running_loop();
    Event fired;
    loop.add_signal_handler(SIGUSR1, [] {});
    auto tick = sleep(0s);
    co_await std::move(tick);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    loop.add_signal_handler(SIGUSR1, [&] { fired.set(); });
    ::raise(SIGUSR1);
    co_await wait_bounded(&fired);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    // The loop asks the backend at least one tick in 64 while work is ready; the cancel of
    // an io_uring read completes on a later call than the one that submits it.
    for (int i = 0; i < 64 * 4 && loop.backend().pending() != 0; ++i) {
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    co_return loop.backend().pending();
}

Coro<> add_and_remove() {
    EventLoop& loop = get_running_loop();
    loop.add_signal_handler(SIGUSR1, [] {});
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    co_return;
}
}  // namespace

TEST(SignalPipeRead, AHandlerAddedRightAfterTheLastWasRemovedStillRuns) {
    Runner runner(RunOptions{.handle_sigint = false});
    EXPECT_EQ(runner.run(add_remove_add_again()), 0u) << "the loop kept I/O of its own in the backend";
}

// A signal that came while a handler was installed, but was not read before the last handler
// went, is dropped (asyncio finds no handler for it): a handler added later does not get it. The
// stopped read left its byte in the pipe, and the restarted read gave it to the new handler.
namespace {
Coro<int> stale_signal_after_the_last_handler_went() {
    EventLoop& loop = get_running_loop();
    int later = 0;
    loop.add_signal_handler(SIGUSR1, [] {});
    ::raise(SIGUSR1);  // its byte waits in the pipe
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    for (int i = 0; i < 64 * 4 && loop.backend().pending() != 0; ++i) {
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    loop.add_signal_handler(SIGUSR1, [&later] { ++later; });
    for (int i = 0; i < 64 * 4; ++i) {  // the backend is asked at least once in 64 ticks
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    co_return later;
}

// Loop `a` holds SIGUSR1: `b`'s attempt fails, and must leave nothing in b's backend.
Coro<int> seven() { co_return 7; }
}  // namespace

TEST(SignalPipeRead, ASignalThatCameBeforeTheLastHandlerWentIsNotGivenToALaterOne) {
    Runner runner(RunOptions{.handle_sigint = false});
    EXPECT_EQ(runner.run(stale_signal_after_the_last_handler_went()), 0);
}

TEST(SignalPipeRead, ARefusedFirstHandlerLeavesNoReadInTheBackend) {
    Runner a(RunOptions{.handle_sigint = false});
    Runner b(RunOptions{.handle_sigint = false});
    a.get_loop().add_signal_handler(SIGUSR1, [] {});
    EXPECT_THROW(b.get_loop().add_signal_handler(SIGUSR1, [] {}), std::logic_error);
    EXPECT_EQ(b.get_loop().backend().pending(), 0u);
    int got = 0;
    std::string refused;
    std::thread other([&] {  // an io_uring ring with I/O in it refuses this
        try {
            got = b.run(seven());
        } catch (const std::exception& e) {
            refused = e.what();
        }
    });
    other.join();
    EXPECT_EQ(refused, "");
    EXPECT_EQ(got, 7);
    EXPECT_TRUE(a.get_loop().remove_signal_handler(SIGUSR1));
}

// A run that ends right after the last handler went leaves no read of the pipe in the backend.
TEST(SignalPipeRead, TheReadStopsWhenARunEndsRightAfterTheLastHandlerWent) {
    Runner runner(RunOptions{.handle_sigint = false});
    runner.run(add_and_remove());
    EXPECT_EQ(runner.get_loop().backend().pending(), 0u);
}

CORIO_TEST(Signals, RemoveRestoresThePreviousDisposition) {
    EventLoop& loop = get_running_loop();
    struct sigaction ignore {}, saved {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGUSR2, &ignore, &saved);
    loop.add_signal_handler(SIGUSR2, [] {});
    struct sigaction during {};
    ::sigaction(SIGUSR2, nullptr, &during);
    EXPECT_NE(during.sa_handler, SIG_IGN);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR2));
    struct sigaction after {};
    ::sigaction(SIGUSR2, nullptr, &after);
    EXPECT_EQ(after.sa_handler, SIG_IGN);
    // Ignored again: raising it now is harmless.
    ::raise(SIGUSR2);
    co_await sleep(0ms);
    ::sigaction(SIGUSR2, &saved, nullptr);
}

CORIO_TEST(Signals, HandlerThatThrowsGoesToTheExceptionHandler) {
    EventLoop& loop = get_running_loop();
    auto previous = loop.get_exception_handler();
    std::vector<std::string> seen;
    Event reported;
    loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) {
        seen.push_back(c.message);
        reported.set();
    });
    loop.add_signal_handler(SIGUSR1, [] { throw std::runtime_error("handler failed"); });
    ::raise(SIGUSR1);
    co_await wait_bounded(&reported);
    loop.set_exception_handler(previous);
    EXPECT_EQ(seen.size(), 1u);
    // The loop goes on: the handler still runs for the next signal.
    int runs = 0;
    Event fired;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++runs;
        fired.set();
    });
    ::raise(SIGUSR1);
    co_await wait_bounded(&fired);
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
}

CORIO_TEST(Signals, UncatchableSignalsAreRefused) {
    EventLoop& loop = get_running_loop();
    for (int sig : {SIGKILL, SIGSTOP, 0, -1, NSIG}) {
        bool refused = false;
        try {
            loop.add_signal_handler(sig, [] {});
        } catch (const std::invalid_argument&) {
            refused = true;
        }
        EXPECT_TRUE(refused) << "signal " << sig;
    }
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));  // nothing installed
    co_return;  // a CORIO_TEST body must be a coroutine
}

// A signal's disposition is the process's: a second loop asking for a signal another loop
// handles is refused (it used to take the signal over silently, and the first loop's
// remove_signal_handler() then cut the second one off).
CORIO_TEST(Signals, ASignalHandledByOneLoopIsRefusedToAnother) {
    EventLoop& loop = get_running_loop();
    loop.add_signal_handler(SIGUSR2, [] {});
    EventLoop other;
    bool refused = false;
    try {
        other.add_signal_handler(SIGUSR2, [] {});
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR2));
    other.add_signal_handler(SIGUSR2, [] {});  // free again
    EXPECT_TRUE(other.remove_signal_handler(SIGUSR2));
    other.close();
    co_return;
}

namespace corio::detail {
extern std::atomic<void (*)()> signal_handler_test_pause;  // src/process/signals.cpp
}

namespace {
std::atomic<bool> g_handler_parked{false};
std::atomic<bool> g_handler_may_go{false};
void park_handler() {  // runs inside the OS-level handler: atomics only
    g_handler_parked.store(true);
    while (!g_handler_may_go.load()) {
    }
}
}  // namespace

// An OS-level handler on another thread has read the loop's pipe fd and not yet written to it
// when the loop closes. Closing the pipe then would let the handler write into whatever file
// takes the number next; the loop waits for the handler instead.
namespace {
std::set<int> open_fds() {
    std::set<int> fds;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) fds.insert(std::stoi(entry.path().filename()));
    return fds;
}
}  // namespace

TEST(SignalPipe, ClosingTheLoopWaitsForAHandlerAboutToWriteToItsPipe) {
    g_handler_parked.store(false);  // a second run in one process (--gtest_repeat) starts afresh
    g_handler_may_go.store(false);
    auto loop = std::make_unique<EventLoop>();
    std::set<int> before = open_fds();
    loop->add_signal_handler(SIGUSR1, [] {});
    int pipe_write_end = -1;
    for (int fd : open_fds())
        if (!before.count(fd) && (::fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) pipe_write_end = fd;
    ASSERT_GE(pipe_write_end, 0);

    detail::signal_handler_test_pause.store(&park_handler);
    std::atomic<bool> stop{false};
    std::thread receiver([&] {
        while (!stop.load()) ::sched_yield();
    });
    ::pthread_kill(receiver.native_handle(), SIGUSR1);
    while (!g_handler_parked.load()) ::sched_yield();

    // Lets the handler go once its fd's number was taken again, or after a while if closing
    // the loop waits for it (then the number is free only after the handler is done).
    std::atomic<bool> reused{false};
    std::thread releaser([&] {
        auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        while (!reused.load() && std::chrono::steady_clock::now() < give_up) ::sched_yield();
        g_handler_may_go.store(true);
    });
    loop->close();
    loop.reset();
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(::dup3(fds[1], pipe_write_end, O_CLOEXEC), pipe_write_end);  // another file, same number
    reused.store(true);
    releaser.join();
    stop.store(true);
    receiver.join();  // its handler has returned
    detail::signal_handler_test_pause.store(nullptr);

    char stray;
    EXPECT_EQ(::read(fds[0], &stray, 1), -1) << "the handler wrote into a file the loop no longer owned";
    ::close(pipe_write_end);
    ::close(fds[0]);
    ::close(fds[1]);
}

namespace {
Coro<int> interrupted_main(bool* cleaned) {
    try {
        ::raise(SIGINT);  // as if the user pressed Ctrl-C
        co_await sleep(std::chrono::hours(1));
    } catch (const CancelledError&) {
        *cleaned = true;
        throw;
    }
    co_return 0;
}

void expect_sigint_restored() {
    struct sigaction sa {};
    ::sigaction(SIGINT, nullptr, &sa);
    EXPECT_EQ(sa.sa_handler, SIG_DFL);  // restored afterwards
}

// A main blocked in socket I/O when Ctrl-C arrives from another thread: the read is cancelled,
// the cleanup may still await (closing the connection), then KeyboardInterrupt.
Coro<int> interrupted_while_reading(std::vector<std::string>* journal) {
    auto handler = [](StreamReader reader, StreamWriter) -> Coro<> {
        std::string eof = co_await reader.read(-1);
    };
    Coro<Server> starting = start_server(handler, "127.0.0.1", 0);
    Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", port);
    StreamPair conn = co_await std::move(connecting);
    std::thread ctrl_c([] { ::kill(::getpid(), SIGINT); });
    std::exception_ptr cancelled;
    try {
        std::string never = co_await conn.first.readline();
        journal->push_back("read returned");
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
        journal->push_back("read cancelled");
    }
    ctrl_c.join();
    // Cleanup that awaits, after the cancellation (asyncio's graceful shutdown).
    conn.second.close();
    co_await conn.second.wait_closed();
    co_await server.aclose();
    journal->push_back("closed");
    if (cancelled) std::rethrow_exception(cancelled);
    co_return 0;
}
}  // namespace

TEST(RunSigint, FirstCtrlCCancelsMainThenKeyboardInterrupt) {
    bool cleaned = false;
    bool interrupted = false;
    try {
        run(interrupted_main(&cleaned));
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    EXPECT_TRUE(cleaned);
    EXPECT_TRUE(interrupted);
    expect_sigint_restored();
}

TEST(RunSigint, CtrlCDuringSocketReadCancelsItAndCleanupCanAwait) {
    std::vector<std::string> journal;
    bool interrupted = false;
    try {
        run(interrupted_while_reading(&journal));
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    EXPECT_TRUE(interrupted);
    EXPECT_EQ(journal, (std::vector<std::string>{"read cancelled", "closed"}));
    expect_sigint_restored();
}

// R5: the application's own SIGINT handler, added then removed inside corio::run, hands Ctrl-C
// back to the run (asyncio's remove_signal_handler restores default_int_handler). The removal
// used to restore SIG_DFL, so the next Ctrl-C killed the process.
TEST(RunSigint, RemovingTheApplicationsHandlerGivesCtrlCBackToTheRun) {
    auto main_coro = [](int* seen_by_app) -> Coro<int> {
        EventLoop& loop = get_running_loop();
        Event handled;
        loop.add_signal_handler(SIGINT, [seen_by_app, &handled] {
            ++*seen_by_app;
            handled.set();
        });
        ::raise(SIGINT);
        co_await handled.wait();  // the application's handler ran, not the run's
        EXPECT_TRUE(loop.remove_signal_handler(SIGINT));
        EXPECT_FALSE(loop.remove_signal_handler(SIGINT));  // nothing of the application's left
        ::raise(SIGINT);
        co_await sleep(std::chrono::hours(1));
        co_return 0;
    };
    int seen_by_app = 0;
    bool interrupted = false;
    try {
        run(main_coro(&seen_by_app));
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    EXPECT_EQ(seen_by_app, 1);
    EXPECT_TRUE(interrupted);
    expect_sigint_restored();
}

TEST(RunSigint, MainThatSwallowsTheCancelReturnsNormally) {
    // asyncio.run: if main catches the cancellation and returns, its result is the result.
    auto main_coro = []() -> Coro<int> {
        ::raise(SIGINT);
        try {
            co_await sleep(std::chrono::hours(1));
        } catch (const CancelledError&) {
            co_return 7;
        }
        co_return 0;
    };
    int result = -1;
    bool interrupted = false;
    try {
        result = run(main_coro());
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    EXPECT_FALSE(interrupted);
    EXPECT_EQ(result, 7);
    expect_sigint_restored();
}

TEST(RunSigint, SigintIsLeftAloneWhenHandleSigintIsOff) {
    struct sigaction ignore {}, saved {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGINT, &ignore, &saved);
    // Ignored before run(): run() must not take it over, with or without handle_sigint.
    auto main_coro = []() -> Coro<int> {
        ::raise(SIGINT);
        co_await sleep(10ms);
        co_return 1;
    };
    int a = run(main_coro(), RunOptions{.handle_sigint = false});
    int b = run(main_coro());
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 1);
    struct sigaction after {};
    ::sigaction(SIGINT, nullptr, &after);
    EXPECT_EQ(after.sa_handler, SIG_IGN);
    ::sigaction(SIGINT, &saved, nullptr);
}
