// Reliability campaign: graceful shutdown with 1,000 tasks in flight (issue 4).
//
// corio::run with 1,000 x CORIO_STRESS_SCALE tasks (10,000 at scale 10) in flight: sleeping
// (some with a cleanup that awaits), waiting for a Lock, a Semaphore, an Event, a Condition, a
// Barrier, a Queue's get and put, a wait_for, a TaskGroup, spinning on sleep(0), and in the
// middle of to_thread. Then
//   * main returns, or
//   * main raises SIGINT itself (corio::run throws KeyboardInterrupt), or
//   * SIGINT comes from another thread while the loop is busy:
// every task is cancelled and awaited (each one saw CancelledError, ran its cleanup and its frame
// was destroyed), no task finished normally, the synchronisation objects are consistent again,
// nothing reached the exception handler (no "Task was destroyed but it is pending", no
// never-awaited coroutine: debug mode is on), the worker threads were asked to stop, and the fd
// count is back to where it was. The figure is the real time from main's end (or the SIGINT)
// to corio::run's return: the goal is 1 s; the test asserts < 5 s to stay robust on a loaded
// machine.
//
// These are plain TESTs: corio::run makes its own loop (CORIO_TEST already runs one).
#include <corio/testing.hpp>

#include "stress_support.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_stress;

namespace {

// The short (CI) value at scale 1, the long one at scale 10, linear in between (and below 1,
// proportionally smaller).
std::size_t by_scale(double short_value, double long_value) {
    const double s = stress_scale();
    const double v = s < 1 ? short_value * s : short_value + (long_value - short_value) * (s - 1) / 9;
    return std::max<std::size_t>(1, static_cast<std::size_t>(v));
}

using SteadyClock = std::chrono::steady_clock;

constexpr int kKinds = 12;

// Everything the tasks share. It lives in the test function, so it outlives corio::run: the
// tasks are cancelled during run()'s shutdown, after main's frame is gone.
struct World {
    Lock lock;
    Semaphore sem{1};
    Event event;
    Lock cond_lock;
    Condition cond{cond_lock};
    Barrier barrier{1 << 30};
    Queue<int> empty_q{0};
    Queue<int> full_q{1};

    std::size_t n = 0;
    std::size_t started = 0;         // loop thread only, like the counters below
    std::size_t suspended = 0;       // reached the await it is to be cancelled in
    std::size_t cancelled_seen = 0;  // caught CancelledError (then rethrew it)
    std::size_t cleanups_awaited = 0;
    std::size_t frames_destroyed = 0;
    std::size_t finished_normally = 0;
    std::size_t holders_cancelled = 0;
    std::size_t kind_counts[kKinds] = {};

    std::atomic<int> threads_running{0};
    std::atomic<int> threads_started{0};
    std::atomic<int> threads_stopped{0};  // saw the stop request on cancel

    std::vector<std::string> reports;  // what reached the exception handler

    SteadyClock::time_point shutdown_began{};
};

// Counts the frame's destruction, whichever way it ends.
struct FrameGuard {
    World* w;
    ~FrameGuard() { ++w->frames_destroyed; }
};

// On a worker thread: blocks until its stop request (a cancelled to_thread) or a safety bound.
void blocking_until_stopped(std::stop_token st, World* w) {
    w->threads_started.fetch_add(1);
    w->threads_running.fetch_add(1);
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, st, 30s, [] { return false; });
    if (st.stop_requested()) w->threads_stopped.fetch_add(1);
    w->threads_running.fetch_sub(1);
}

Coro<> sleeping_child(World* w) {
    FrameGuard g{w};
    co_await sleep(std::chrono::hours(1));
}

// One task in flight: reaches an await of its kind and stays there until cancelled.
Coro<> in_flight(int kind, World* w) {
    FrameGuard g{w};
    ++w->started;
    ++w->kind_counts[kind];
    std::exception_ptr cancelled;
    bool cleanup_awaits = false;
    try {
        switch (kind) {
        case 0:
            ++w->suspended;
            co_await sleep(std::chrono::hours(1));
            break;
        case 1: {
            ++w->suspended;
            auto held = co_await w->lock.acquire();
            break;
        }
        case 2: {
            ++w->suspended;
            auto held = co_await w->sem.acquire();
            break;
        }
        case 3:
            ++w->suspended;
            co_await w->event.wait();
            break;
        case 4: {
            ++w->suspended;
            int item = co_await w->empty_q.get();
            (void)item;
            break;
        }
        case 5:
            ++w->suspended;
            co_await w->full_q.put(kind);
            break;
        case 6: {
            auto held = co_await w->cond.acquire();
            ++w->suspended;
            Coro<bool> waiting = w->cond.wait();
            co_await std::move(waiting);
            break;
        }
        case 7: {
            ++w->suspended;
            co_await to_thread(blocking_until_stopped, w);
            break;
        }
        case 8: {
            ++w->suspended;
            auto inner = sleep(std::chrono::hours(1));
            Coro<> bounded = wait_for(std::move(inner), std::chrono::hours(1));
            co_await std::move(bounded);
            break;
        }
        case 9:  // busy: the loop is never idle while these run
            ++w->suspended;
            for (;;) co_await sleep(0ms);
        case 10: {
            ++w->suspended;
            Coro<int> waiting = w->barrier.wait();
            co_await std::move(waiting);
            break;
        }
        default: {
            ++w->suspended;
            Coro<> group = task_group([w](TaskGroup& tg) -> Coro<> {
                tg.create_task(sleeping_child(w));
                tg.create_task(sleeping_child(w));
                co_await sleep(std::chrono::hours(1));
            });
            co_await std::move(group);
            break;
        }
        }
        ++w->finished_normally;
    } catch (const CancelledError&) {
        ++w->cancelled_seen;
        cancelled = std::current_exception();
        cleanup_awaits = kind == 0;
    }
    if (cleanup_awaits) {
        // asyncio's graceful shutdown: cleanup may await after the cancellation.
        co_await sleep(1ms);
        ++w->cleanups_awaited;
    }
    if (cancelled) std::rethrow_exception(cancelled);
}

// Holds the lock and the semaphore, so that their waiters wait.
Coro<> holder(World* w) {
    auto a = co_await w->lock.acquire();
    auto b = co_await w->sem.acquire();
    try {
        co_await sleep(std::chrono::hours(1));
    } catch (const CancelledError&) {
        ++w->holders_cancelled;
        throw;
    }
}

void install_report_collector(World* w) {
    get_running_loop().set_exception_handler(
        [w](EventLoop&, const ExceptionContext& c) { w->reports.push_back(corio::testing::format_report(c)); });
}

// Starts the holder and the n tasks, and waits until each is suspended where it should be and
// every worker thread of the default executor has taken a call.
Coro<> start_world(World* w) {
    install_report_collector(w);
    w->full_q.put_nowait(-1);
    (void)create_task(holder(w), "holder");  // the loop keeps it; run() cancels it
    co_await sleep(0ms);  // the holder takes the lock and the semaphore first
    std::size_t blocking = 0;  // tasks that will sit in to_thread
    for (std::size_t i = 0; i < w->n; ++i) {
        if (i % kKinds == 7) ++blocking;
        (void)create_task(in_flight(int(i % kKinds), w), "in-flight-" + std::to_string(i));
    }
    const int busy_threads = int(std::min<std::size_t>(ThreadPool::default_size(), blocking));
    const auto bound = SteadyClock::now() + 20s;
    while (SteadyClock::now() < bound) {
        co_await sleep(1ms);
        if (w->suspended == w->n && w->threads_started.load() >= busy_threads) break;
    }
    for (int i = 0; i < 5; ++i) co_await sleep(0ms);  // the last ones reach their awaits
}

Coro<int> main_returns(World* w) {
    Coro<> starting = start_world(w);
    co_await std::move(starting);
    w->shutdown_began = SteadyClock::now();
    co_return 42;
}

Coro<int> main_raises_sigint(World* w) {
    Coro<> starting = start_world(w);
    co_await std::move(starting);
    w->shutdown_began = SteadyClock::now();
    ::raise(SIGINT);  // as if the user pressed Ctrl-C
    co_await sleep(30s);  // cancelled long before
    co_return 1;
}

Coro<int> main_interrupted_from_another_thread(World* w, std::thread* ctrl_c) {
    Coro<> starting = start_world(w);
    co_await std::move(starting);
    w->shutdown_began = SteadyClock::now();
    *ctrl_c = std::thread([] { ::kill(::getpid(), SIGINT); });
    co_await sleep(30s);  // cancelled long before
    co_return 1;
}

RunOptions strict_options() {
    RunOptions o;
    o.debug = true;  // pending tasks destroyed, never-awaited coroutines: all reported
    o.slow_callback_duration = std::chrono::seconds(60);  // starting 10^4 tasks is one long step
    return o;
}

// Restores a signal's disposition on scope exit; SIGINT gets SIG_DFL for the test (a background
// job of a non-interactive shell starts with SIGINT ignored, and corio only takes over SIGINT
// when it has its default disposition).
struct DefaultSigint {
    struct sigaction old {};
    DefaultSigint() {
        ::sigaction(SIGINT, nullptr, &old);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        ::sigaction(SIGINT, &dfl, nullptr);
    }
    ~DefaultSigint() { ::sigaction(SIGINT, &old, nullptr); }
};

void expect_all_cancelled_and_awaited(const World& w, const char* how, double shutdown_ms) {
    SCOPED_TRACE(how);
    const std::size_t children = 2 * w.kind_counts[kKinds - 1];  // the task groups' children
    EXPECT_EQ(w.started, w.n);
    EXPECT_EQ(w.suspended, w.n);
    EXPECT_EQ(w.finished_normally, 0u);
    EXPECT_EQ(w.cancelled_seen, w.n) << "every task in flight sees CancelledError";
    EXPECT_EQ(w.cleanups_awaited, w.kind_counts[0]) << "a cleanup that awaits is allowed to finish";
    EXPECT_EQ(w.frames_destroyed, w.n + children) << "every coroutine frame is destroyed by the end";
    EXPECT_EQ(w.holders_cancelled, 1u);
    EXPECT_EQ(w.threads_running.load(), 0) << "every to_thread call has returned";
    EXPECT_EQ(w.threads_stopped.load(), w.threads_started.load()) << "each running call got its stop request";
    // Cancelled waiters neither stole nor leaked anything.
    EXPECT_FALSE(w.lock.locked());
    EXPECT_EQ(w.sem.value(), 1);
    EXPECT_FALSE(w.cond_lock.locked());
    EXPECT_EQ(w.full_q.qsize(), 1u);
    EXPECT_EQ(w.empty_q.qsize(), 0u);
    EXPECT_EQ(w.barrier.n_waiting(), 0);
    for (const auto& r : w.reports) ADD_FAILURE() << "reported by the event loop: " << r;
    EXPECT_LT(shutdown_ms, 5000.0) << "the goal is 1 s";
}

double ms_since(SteadyClock::time_point t0) {
    return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

}  // namespace

TEST(StressShutdown, MainReturnsWithThousandTasksInFlight) {
    const auto fds_before = open_fds();
    World w;
    w.n = by_scale(1'000, 10'000);
    int result = 0;
    try {
        result = run(main_returns(&w), strict_options());
    } catch (const std::exception& e) {
        ADD_FAILURE() << "run threw: " << e.what();
    }
    const double shutdown_ms = ms_since(w.shutdown_began);
    EXPECT_EQ(result, 42);
    expect_all_cancelled_and_awaited(w, "main returned", shutdown_ms);
    EXPECT_EQ(fds_leaked_since(fds_before), "");
    figure("tasks_in_flight", double(w.n));
    // Calls started: the pool's threads at first; while the shutdown cancels task after task, a
    // worker whose call was stopped may start a call whose task is not cancelled yet (that one
    // is then stopped too), so this can exceed the pool's size.
    figure("to_thread_calls", double(w.kind_counts[7]));
    figure("to_thread_calls_started", w.threads_started.load());
    figure("shutdown_ms_after_main_returns", shutdown_ms);
}

TEST(StressShutdown, SigintRaisedInMainWithThousandTasksInFlight) {
    DefaultSigint sigint;
    const auto fds_before = open_fds();
    World w;
    w.n = by_scale(1'000, 10'000);
    bool interrupted = false;
    try {
        (void)run(main_raises_sigint(&w), strict_options());
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "run threw: " << e.what();
    }
    const double shutdown_ms = ms_since(w.shutdown_began);
    EXPECT_TRUE(interrupted) << "corio::run must throw KeyboardInterrupt after SIGINT";
    expect_all_cancelled_and_awaited(w, "SIGINT raised in main", shutdown_ms);
    struct sigaction now {};
    ::sigaction(SIGINT, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL) << "run restores SIGINT's disposition";
    EXPECT_EQ(fds_leaked_since(fds_before), "");
    figure("tasks_in_flight", double(w.n));
    figure("shutdown_ms_after_sigint", shutdown_ms);
}

TEST(StressShutdown, SigintFromAnotherThreadWhileTheLoopIsBusy) {
    DefaultSigint sigint;
    const auto fds_before = open_fds();
    World w;
    w.n = by_scale(1'000, 10'000);
    std::thread ctrl_c;
    bool interrupted = false;
    try {
        (void)run(main_interrupted_from_another_thread(&w, &ctrl_c), strict_options());
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "run threw: " << e.what();
    }
    const double shutdown_ms = ms_since(w.shutdown_began);
    if (ctrl_c.joinable()) ctrl_c.join();
    EXPECT_TRUE(interrupted) << "corio::run must throw KeyboardInterrupt after SIGINT";
    expect_all_cancelled_and_awaited(w, "SIGINT from another thread", shutdown_ms);
    EXPECT_EQ(fds_leaked_since(fds_before), "");
    figure("tasks_in_flight", double(w.n));
    figure("shutdown_ms_after_cross_thread_sigint", shutdown_ms);
}
