// corio::run's edges: SIGTERM gives KeyboardInterrupt(SIGTERM), a second signal during the
// main task's cleanup ends the process by the default action, a signal during the shutdown
// after main returned (or failed) still gives KeyboardInterrupt (all in a forked child, so this
// process is safe); a stop() during the shutdown, thrown once the loop is closed. The main
// task's name and the environment are in test_runner_options.cpp.
#include <corio/debug.hpp>
#include <corio/socket.hpp>
#include <corio/testing.hpp>

#include "child_support.hpp"
#include "core_support.hpp"
#include "net_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::capture_reports;
using corio_test::ChildOutcome;
using corio_test::in_child;
using corio_test::say;

namespace {

Coro<int> signal_then_wait(int sig, int fd) {
    try {
        ::raise(sig);  // as if sent from outside
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        say(fd, "cleanup;");
        throw;
    }
    co_return 0;
}

// Sleeps for `d`; true if the sleep was cancelled.
Coro<bool> cancelled_while_sleeping(Clock::duration d) {
    try {
        auto s = sleep(d);
        co_await std::move(s);
    } catch (const CancelledError&) {
        co_return true;
    }
    co_return false;
}

// The first signal cancels main; its cleanup sends the second one, then awaits a while.
Coro<int> second_signal_during_cleanup(int sig, int fd) {
    ::raise(sig);
    Coro<bool> first = cancelled_while_sleeping(1h);
    if (co_await std::move(first)) {
        say(fd, "cleanup;");
        ::raise(sig);
        auto s = sleep(5s);
        co_await std::move(s);
        say(fd, "survived;");
        throw CancelledError();
    }
    co_return 0;
}

// A task still running when main returns: cancelled by the shutdown, its cleanup takes a while
// (an hour, unless cancelled again), and Ctrl-C comes during it. `second` sends another.
Coro<> slow_to_shut_down(int sig, int fd, bool second) {
    Coro<bool> first = cancelled_while_sleeping(1h);
    if (!co_await std::move(first)) co_return;
    say(fd, "cleanup;");
    ::raise(sig);
    Coro<bool> again = cancelled_while_sleeping(1h);
    if (!co_await std::move(again)) co_return;
    say(fd, "cancelled again;");
    if (second) {
        ::raise(sig);
        auto s = sleep(1h);
        co_await std::move(s);
        say(fd, "survived;");
    }
    auto rest = sleep(0s);
    co_await std::move(rest);
    say(fd, "cleanup done;");
}

// Cleanup that takes only a few ticks of ready work, with Ctrl-C in the middle: the loop may
// not have read its signal pipe by the time the shutdown is over.
Coro<> short_cleanup_interrupted(int fd) {
    Coro<bool> waiting = cancelled_while_sleeping(1h);
    if (!co_await std::move(waiting)) co_return;
    ::raise(SIGINT);
    for (int i = 0; i < 3; ++i) {
        auto s = sleep(0s);
        co_await std::move(s);
    }
    say(fd, "cleanup done;");
}

Coro<int> leaves_a_short_cleanup(int fd) {
    Task<> background = create_task(short_cleanup_interrupted(fd));
    auto started = sleep(0s);
    co_await std::move(started);
    co_return 7;
}

// Ctrl-C as main finishes: the handler runs in main's last tick (a pending receive makes the
// loop read its pipe every tick), when there is no main left to cancel.
Coro<> waits_on_a_socket(Socket* s) {
    Coro<std::string> receiving = sock_recv(*s, 10);
    (void)co_await std::move(receiving);
}

Coro<int> interrupted_as_it_returns(Socket* s) {
    Task<> background = create_task(waits_on_a_socket(s));
    auto started = sleep(0s);
    co_await std::move(started);
    ::raise(SIGINT);
    auto last = sleep(0s);
    co_await std::move(last);
    co_return 7;
}

Coro<int> leaves_a_slow_task(int sig, int fd, bool second) {
    Task<> background = create_task(slow_to_shut_down(sig, fd, second));  // still running when main returns
    auto started = sleep(0s);
    co_await std::move(started);
    co_return 7;
}

Coro<int> fails_leaving_a_slow_task(int fd) {
    Task<> background = create_task(slow_to_shut_down(SIGINT, fd, false));
    auto started = sleep(0s);
    co_await std::move(started);
    throw std::runtime_error("main failed");
}

// Two signals while main's step holds the loop (a blocking call, a busy loop): the loop never
// reads its pipe, so only the signal handler itself can act on the second.
Coro<int> blocks_the_loop_through_two_signals(int sig, int fd) {
    say(fd, "blocking;");
    ::raise(sig);
    ::raise(sig);
    say(fd, "survived;");
    co_return 0;
}

// SIGINT then SIGTERM: one count for both, as the runner's.
Coro<int> blocks_through_sigint_then_sigterm(int fd) {
    say(fd, "blocking;");
    ::raise(SIGINT);
    ::raise(SIGTERM);
    say(fd, "survived;");
    co_return 0;
}

// The first Ctrl-C ends run(); the second comes in close()'s shutdown, from a cleanup that then
// blocks the loop: the count goes on from the run's, it does not start again for the shutdown.
Coro<> second_signal_in_a_blocked_shutdown(int fd) {
    try {
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        ::raise(SIGINT);
        say(fd, "survived;");
        throw;
    }
}

Coro<int> first_signal_then_leaves_a_task(int fd) {
    (void)create_task(second_signal_in_a_blocked_shutdown(fd), "leftover");
    auto started = sleep(0s);
    co_await std::move(started);
    ::raise(SIGINT);
    auto s = sleep(1h);
    co_await std::move(s);
    co_return 0;
}

// A signal that arrives while only the runner's handler is set but reaches the application's
// handler, added in the same step: after the application removes its handler, the next Ctrl-C
// is the runner's first (it cancels main), not its second.
Coro<int> app_handler_takes_a_counted_signal(int fd) {
    EventLoop& loop = get_running_loop();
    int seen = 0;
    ::raise(SIGINT);
    loop.add_signal_handler(SIGINT, [&seen] { ++seen; });
    while (seen < 1) {
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    loop.remove_signal_handler(SIGINT);
    say(fd, "app saw it;");
    ::raise(SIGINT);
    try {
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        say(fd, "main cancelled;");
        throw;
    }
    co_return 0;
}

// The application's own handler gets every signal: no second one ends the process.
Coro<int> handles_two_signals_itself(int fd) {
    int seen = 0;
    get_running_loop().add_signal_handler(SIGINT, [&seen] { ++seen; });
    ::raise(SIGINT);
    ::raise(SIGINT);
    while (seen < 2) {
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    get_running_loop().remove_signal_handler(SIGINT);
    say(fd, "seen " + std::to_string(seen) + ";");
    co_return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Signals (runners.md:20-26, 54-58; errors.md:45-47)
// ---------------------------------------------------------------------------------------------

// runners.md:21, 54-56, errors.md:45-47: SIGTERM: cleanup, then KeyboardInterrupt(SIGTERM, "interrupted by SIGTERM").
TEST(RunTermSignal, SigtermGivesKeyboardInterruptNamingSigterm) {
    ChildOutcome child = in_child([](int fd) {
        try {
            (void)corio::run(signal_then_wait(SIGTERM, fd));
            say(fd, "returned;");
        } catch (const KeyboardInterrupt& k) {
            say(fd, "signal=" + std::to_string(k.signal()) + ";what=" + k.what() + ";");
        }
        struct sigaction sa {};
        ::sigaction(SIGTERM, nullptr, &sa);
        say(fd, sa.sa_handler == SIG_DFL ? "default again;" : "still handled;");
    });
    ASSERT_TRUE(child.finished) << child.output;
    ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
    EXPECT_EQ(WEXITSTATUS(child.status), 0) << child.output;
    EXPECT_EQ(child.output,
              "cleanup;signal=" + std::to_string(SIGTERM) + ";what=interrupted by SIGTERM;default again;");
}

// errors.md:45-47: after SIGINT, what() is "interrupted by SIGINT" and signal() is SIGINT.
TEST(RunTermSignal, SigintGivesKeyboardInterruptNamingSigint) {
    ChildOutcome child = in_child([](int fd) {
        try {
            (void)corio::run(signal_then_wait(SIGINT, fd));
            say(fd, "returned;");
        } catch (const KeyboardInterrupt& k) {
            say(fd, "signal=" + std::to_string(k.signal()) + ";what=" + k.what() + ";");
        }
    });
    ASSERT_TRUE(child.finished) << child.output;
    ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
    EXPECT_EQ(child.output, "cleanup;signal=" + std::to_string(SIGINT) + ";what=interrupted by SIGINT;");
}

// runners.md:21-27: Ctrl-C (or SIGTERM) during the shutdown after main returned cancels what
// still runs, lets the shutdown finish, then run() throws KeyboardInterrupt (asyncio's runner
// puts back Python's handler, which raises it); it used to find the default disposition and
// kill the process mid-cleanup. A second one ends the process.
TEST(RunTermSignal, SignalDuringTheShutdownCancelsWhatRunsThenRaisesKeyboardInterrupt) {
    for (int sig : {SIGINT, SIGTERM}) {
        ChildOutcome child = in_child([sig](int fd) {
            try {
                int r = corio::run(leaves_a_slow_task(sig, fd, false));
                say(fd, "returned " + std::to_string(r) + ";");
            } catch (const KeyboardInterrupt& k) {
                say(fd, "KeyboardInterrupt " + std::to_string(k.signal()) + ";");
            }
        });
        ASSERT_TRUE(child.finished) << child.output;
        ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
        EXPECT_EQ(child.output, "cleanup;cancelled again;cleanup done;KeyboardInterrupt " + std::to_string(sig) + ";");

        ChildOutcome killed = in_child([sig](int fd) {
            try {
                (void)corio::run(leaves_a_slow_task(sig, fd, true));
            } catch (const KeyboardInterrupt&) {
                say(fd, "KeyboardInterrupt;");
            }
        });
        ASSERT_TRUE(killed.finished) << killed.output;
        ASSERT_TRUE(WIFSIGNALED(killed.status)) << killed.output;
        EXPECT_EQ(WTERMSIG(killed.status), sig);
        EXPECT_EQ(killed.output, "cleanup;cancelled again;");
    }
}

// runners.md:54-63: after main failed, a Ctrl-C during the shutdown replaces main's error, as
// asyncio's runner raises KeyboardInterrupt out of its __exit__ (the destructor used to swallow it).
TEST(RunTermSignal, SignalDuringTheShutdownAfterAFailedMainIsKeyboardInterrupt) {
    ChildOutcome child = in_child([](int fd) {
        try {
            (void)corio::run(fails_leaving_a_slow_task(fd));
            say(fd, "returned;");
        } catch (const KeyboardInterrupt& k) {
            say(fd, "KeyboardInterrupt " + std::to_string(k.signal()) + ";");
        } catch (const std::runtime_error& e) {
            say(fd, std::string(e.what()) + ";");
        }
    });
    ASSERT_TRUE(child.finished) << child.output;
    ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
    EXPECT_EQ(child.output, "cleanup;cancelled again;cleanup done;KeyboardInterrupt " + std::to_string(SIGINT) + ";");
}

// runners.md:21-27: a Ctrl-C during a shutdown too short for the loop to read its signal pipe is
// still taken (it was dropped with the pipe, and run() returned normally).
TEST(RunTermSignal, SignalDuringAShortShutdownIsNotLost) {
    ChildOutcome child = in_child([](int fd) {
        try {
            int r = corio::run(leaves_a_short_cleanup(fd));
            say(fd, "returned " + std::to_string(r) + ";");
        } catch (const KeyboardInterrupt& k) {
            say(fd, "KeyboardInterrupt " + std::to_string(k.signal()) + ";");
        }
    });
    ASSERT_TRUE(child.finished) << child.output;
    ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
    EXPECT_EQ(child.output, "cleanup done;KeyboardInterrupt " + std::to_string(SIGINT) + ";");
}

// A Ctrl-C handled as main finishes, with no main left to cancel, is KeyboardInterrupt all the
// same (asyncio's _on_sigint raises it): from Runner::run, and from corio::run after the shutdown.
// It used to cancel the other tasks and vanish.
TEST(RunTermSignal, SignalHandledAsMainFinishesIsKeyboardInterrupt) {
    for (bool through_run : {true, false}) {
        ChildOutcome child = in_child([through_run](int fd) {
            auto [s, peer] = corio_test::unix_socket_pair();
            try {
                if (through_run) {
                    int r = corio::run(interrupted_as_it_returns(&s));
                    say(fd, "returned " + std::to_string(r) + ";");
                } else {
                    Runner runner;
                    try {
                        int r = runner.run(interrupted_as_it_returns(&s));
                        say(fd, "run returned " + std::to_string(r) + ";");
                    } catch (const KeyboardInterrupt& k) {
                        say(fd, "run: KeyboardInterrupt " + std::to_string(k.signal()) + ";");
                    }
                    runner.close();
                    say(fd, "closed;");
                }
            } catch (const KeyboardInterrupt& k) {
                say(fd, "KeyboardInterrupt " + std::to_string(k.signal()) + ";");
            }
        });
        ASSERT_TRUE(child.finished) << child.output;
        ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
        const std::string sigint = std::to_string(SIGINT);
        EXPECT_EQ(child.output, through_run ? "KeyboardInterrupt " + sigint + ";" : "run: KeyboardInterrupt " + sigint + ";closed;");
    }
}

namespace {
Coro<int> interrupted_in_the_last_step() {
    auto s = sleep(0s);
    co_await std::move(s);
    ::raise(SIGINT);  // a Ctrl-C during main's last stretch of synchronous work
    co_return 1;
}

Coro<int> short_main() {
    auto s = sleep(1ms);
    co_await std::move(s);
    co_return 2;
}
}  // namespace

// A Runner used for several runs: a Ctrl-C during main's last step is that run()'s
// KeyboardInterrupt (asyncio raises it there); it stayed in the signal pipe, run() returned
// normally, and the next run()'s main was cancelled by it.
TEST(RunTermSignal, SignalInMainsLastStepBelongsToThatRun) {
    ChildOutcome child = in_child([](int fd) {
        Runner runner;
        for (int round = 0; round < 2; ++round) {
            try {
                int r = round == 0 ? runner.run(interrupted_in_the_last_step()) : runner.run(short_main());
                say(fd, "returned " + std::to_string(r) + ";");
            } catch (const KeyboardInterrupt& k) {
                say(fd, "KeyboardInterrupt " + std::to_string(k.signal()) + ";");
            }
        }
        runner.close();
    });
    ASSERT_TRUE(child.finished) << child.output;
    ASSERT_TRUE(WIFEXITED(child.status)) << child.output;
    EXPECT_EQ(child.output, "KeyboardInterrupt " + std::to_string(SIGINT) + ";returned 2;");
}

// runners.md:24-25: close() after the loop was closed by hand does nothing more, whether Ctrl-C
// is handled or not (watching it needed an open loop: "Event loop is closed").
TEST(RunShutdownStop, CloseAfterTheLoopWasClosedByHandSucceeds) {
    for (bool handle_sigint : {true, false}) {
        RunOptions options;
        options.handle_sigint = handle_sigint;
        Runner runner(std::move(options));
        runner.get_loop().close();
        EXPECT_NO_THROW(runner.close()) << "handle_sigint=" << handle_sigint;
    }
}

// runners.md:26-27, 56-57: a second SIGINT/SIGTERM during main's cleanup kills the process by that signal.
TEST(RunTermSignal, SecondSignalDuringCleanupEndsTheProcessByTheDefaultAction) {
    for (int sig : {SIGINT, SIGTERM}) {
        ChildOutcome child = in_child([sig](int fd) {
            try {
                (void)corio::run(second_signal_during_cleanup(sig, fd));
                say(fd, "returned;");
            } catch (const KeyboardInterrupt&) {
                say(fd, "KeyboardInterrupt;");
            }
        });
        ASSERT_TRUE(child.finished) << "signal " << sig << ": " << child.output;
        EXPECT_TRUE(WIFSIGNALED(child.status)) << "signal " << sig << ": " << child.output;
        if (WIFSIGNALED(child.status)) {
            EXPECT_EQ(WTERMSIG(child.status), sig);
        }
        EXPECT_EQ(child.output, "cleanup;") << "signal " << sig;
    }
}

// ---------------------------------------------------------------------------------------------
// A stop() during the shutdown (runners.md:24-25)
// ---------------------------------------------------------------------------------------------

namespace {
// Cancelled by the shutdown, it stops the loop and keeps waiting.
Coro<> stops_the_loop_when_cancelled(bool* stopped) {
    bool cancelled = false;
    try {
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        *stopped = true;
        get_running_loop().stop();
        auto s = sleep(1h);
        co_await std::move(s);
    }
}

Coro<> leaves_a_stopper(Task<>* out, bool* stopped, std::vector<ExceptionContext>* reports) {
    capture_reports(reports);
    *out = create_task(stops_the_loop_when_cancelled(stopped), "stopper");
    auto tick = sleep(0s);
    co_await std::move(tick);
}
}  // namespace

// runners.md:24-25: a stop() during the shutdown is thrown by run() only after the loop closed (task destroyed).
TEST(RunShutdownStop, AStopDuringShutdownIsThrownAfterTheLoopIsClosed) {
    Task<> stopper;
    bool stopped = false;
    std::vector<ExceptionContext> reports;
    bool threw = false;
    try {
        corio::run(leaves_a_stopper(&stopper, &stopped, &reports));
    } catch (const std::logic_error& e) {
        threw = true;
        EXPECT_STREQ(e.what(), "Event loop stopped before Future completed.");
        ASSERT_TRUE(stopper);
        EXPECT_TRUE(stopper.done());
        EXPECT_TRUE(stopper.cancelled());
        ASSERT_EQ(reports.size(), 1u) << all_messages(reports);
        EXPECT_EQ(reports[0].message, "Task was destroyed but it is pending!");
        EXPECT_EQ(reports[0].task_name, "stopper");
    }
    EXPECT_TRUE(stopped);
    EXPECT_TRUE(threw) << "run() did not throw the stop";
}

// runners.md: a second Ctrl-C (or SIGTERM) ends the process even while the program blocks the
// loop, as asyncio's second Ctrl-C raises KeyboardInterrupt in whatever the main thread runs.
// It was counted on the loop, which a blocked loop never reaches: only SIGKILL ended it.
TEST(RunTermSignal, ASecondSignalEndsTheProcessEvenWhileTheLoopIsBlocked) {
    for (int sig : {SIGINT, SIGTERM}) {
        ChildOutcome child = in_child([sig](int fd) {
            try {
                (void)corio::run(blocks_the_loop_through_two_signals(sig, fd));
            } catch (const KeyboardInterrupt&) {
                say(fd, "KeyboardInterrupt;");
            }
        });
        ASSERT_TRUE(child.finished) << child.output;
        ASSERT_TRUE(WIFSIGNALED(child.status)) << child.output;
        EXPECT_EQ(WTERMSIG(child.status), sig);
        EXPECT_EQ(child.output, "blocking;");
    }
    ChildOutcome own = in_child([](int fd) { (void)corio::run(handles_two_signals_itself(fd)); });
    ASSERT_TRUE(own.finished) << own.output;
    ASSERT_TRUE(WIFEXITED(own.status)) << own.output;
    EXPECT_EQ(own.output, "seen 2;");
}

// The runner's count and the signal handler's agree: SIGINT then SIGTERM is a second signal;
// a second Ctrl-C in close()'s shutdown is the second (the handler had restarted its count
// there); a signal the application's handler took is not counted against a later Ctrl-C.
TEST(RunTermSignal, TheSignalHandlersCountFollowsTheRunners) {
    ChildOutcome mixed = in_child([](int fd) { (void)corio::run(blocks_through_sigint_then_sigterm(fd)); });
    ASSERT_TRUE(mixed.finished) << mixed.output;
    ASSERT_TRUE(WIFSIGNALED(mixed.status)) << mixed.output;
    EXPECT_EQ(WTERMSIG(mixed.status), SIGTERM);
    EXPECT_EQ(mixed.output, "blocking;");

    ChildOutcome in_close = in_child([](int fd) {
        Runner runner;
        try {
            (void)runner.run(first_signal_then_leaves_a_task(fd));
        } catch (const KeyboardInterrupt&) {
            say(fd, "run: KeyboardInterrupt;");
        }
        try {
            runner.close();
        } catch (const KeyboardInterrupt&) {
            say(fd, "close: KeyboardInterrupt;");
        }
    });
    ASSERT_TRUE(in_close.finished) << in_close.output;
    ASSERT_TRUE(WIFSIGNALED(in_close.status)) << in_close.output;
    EXPECT_EQ(WTERMSIG(in_close.status), SIGINT);
    EXPECT_EQ(in_close.output, "run: KeyboardInterrupt;");

    ChildOutcome app = in_child([](int fd) {
        try {
            (void)corio::run(app_handler_takes_a_counted_signal(fd));
        } catch (const KeyboardInterrupt&) {
            say(fd, "KeyboardInterrupt;");
        }
    });
    ASSERT_TRUE(app.finished) << app.output;
    ASSERT_TRUE(WIFEXITED(app.status)) << app.output;
    EXPECT_EQ(app.output, "app saw it;main cancelled;KeyboardInterrupt;");
}
