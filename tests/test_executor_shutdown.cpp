// Blocking code, continued from test_executor.cpp: pool threads, loop lifetimes and shutting
// down. Calls submitted back to back each get a thread while one is idle; a worker calling back
// into a loop that corio::run is closing is answered; to_thread after the default executor's
// shutdown is refused; a pool shut down as the task suspends fails the await cleanly; a call
// that outlives its loop, or is queued when the loop closes, is dropped (its function released
// on the loop's thread); shutdown() from one of the pool's own calls is refused, and a second
// one waits for the first; a task cancelled by corio::run's shutdown answers its
// run_coroutine_threadsafe future, as asyncio's runner does.
//
// Synchronisation with the worker threads uses latches, condition variables, promises and
// call_soon_threadsafe, never sleeps; the only timed waits are safety bounds (a broken build
// fails instead of hanging forever).
#include <corio/testing.hpp>

#include "executor_support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::Gate;
using corio_test::LoopSignal;

// ---------------------------------------------------------------------------------------------
// Pool threads, loop lifetimes, shut-down executors
// ---------------------------------------------------------------------------------------------

namespace {
// Two calls that can only finish together: each waits (bounded) for the other to arrive.
struct Rendezvous {
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    bool meet() {
        std::unique_lock lock(m);
        ++arrived;
        cv.notify_all();
        return cv.wait_for(lock, 5s, [&] { return arrived >= 2; });
    }
};

Coro<bool> meet_on(ThreadPool* pool, Rendezvous* r) {
    auto call = run_in_executor(*pool, [r] { return r->meet(); });
    bool met = co_await std::move(call);
    co_return met;
}
}  // namespace

// Calls submitted back to back while one thread sits idle each get a thread (up to
// max_threads): the idle thread counted for the first is not counted again for the second
// (they ran one after the other before, and two calls that must overlap never met).
CORIO_TEST(Executor, BackToBackCallsGetTheirOwnThreadsWhileOneIsIdle) {
    ThreadPool pool(2);
    for (int round = 0; round < 10; ++round) {
        // Leaves at least one pool thread idle, or on its way back to idle.
        auto warm = run_in_executor(pool, [] { return 0; });
        int w = co_await std::move(warm);
        (void)w;
        Rendezvous r;
        Task<bool> a = create_task(meet_on(&pool, &r));
        Task<bool> b = create_task(meet_on(&pool, &r));
        bool met_a = co_await a;
        bool met_b = co_await b;
        EXPECT_TRUE(met_a) << "round " << round;
        EXPECT_TRUE(met_b) << "round " << round;
        if (!met_a || !met_b) break;
    }
}

namespace {
Coro<int> forty_two() { co_return 42; }

struct CallBackState {
    corio::Event started;                // the worker runs (set from the worker, on the loop)
    std::promise<void> gate;             // opened once the task that awaited the worker is gone
    std::shared_future<void> opened = gate.get_future().share();
    std::atomic<int> answer{0};
};

Coro<> awaits_the_worker(EventLoop* loop, CallBackState* s) {
    auto worker = [loop, s] {
        loop->call_soon_threadsafe([s] { s->started.set(); });
        s->opened.wait();
        std::future<int> reply = run_coroutine_threadsafe(forty_two(), *loop);
        s->answer.store(reply.get());
    };
    auto call = to_thread(worker);
    co_await std::move(call);
}

Coro<> starts_the_worker(CallBackState* s) {
    EventLoop& loop = get_running_loop();
    Task<> waiting = create_task(awaits_the_worker(&loop, s));
    // The close cancels `waiting` (the call runs on) before it joins the pool; only then may
    // the worker ask the loop for something.
    waiting.add_done_callback([s] { s->gate.set_value(); });
    co_await s->started.wait();
}
}  // namespace

// R3 step 5: corio::run's shutdown joins the default executor while the loop runs (asyncio joins
// it in a thread and awaits that). A worker that calls back into its loop after the run's main
// returned used to wait for ever, and the join with it.
TEST(ExecutorShutdown, AWorkerCallingBackIntoTheLoopIsAnsweredAsTheRunnerCloses) {
    CallBackState state;
    Runner runner;
    runner.run(starts_the_worker(&state));
    runner.close();
    EXPECT_EQ(state.answer.load(), 42);
}

// A to_thread call made before shutdown_default_executor() and awaited after it is refused as
// it is submitted. It used to keep a pointer to the destroyed pool, and submitted to it
// (use-after-free: a hang on the freed pool's mutex, or a crash).
CORIO_TEST(Executor, ToThreadMadeBeforeTheDefaultExecutorShutsDownIsRefused) {
    auto call = to_thread([] { return 7; });
    get_running_loop().shutdown_default_executor();
    std::string refusal;
    try {
        int v = co_await std::move(call);
        (void)v;
    } catch (const std::logic_error& e) {
        refusal = e.what();
    }
    EXPECT_EQ(refusal, "cannot schedule new calls after shutdown");
}

// asyncio's loop.run_in_executor(None, ...) after shutdown_default_executor(): RuntimeError.
// Here std::logic_error, as from any shut-down executor; no new default pool is made.
CORIO_TEST(Executor, ToThreadAfterShutdownDefaultExecutorIsRefused) {
    EventLoop& loop = get_running_loop();
    auto first = to_thread([] { return 1; });
    int v = co_await std::move(first);
    EXPECT_EQ(v, 1);
    loop.shutdown_default_executor();
    std::string refusal;
    try {
        auto call = to_thread([] { return 2; });
        int w = co_await std::move(call);
        (void)w;
    } catch (const std::logic_error& e) {
        refusal = e.what();
    }
    EXPECT_EQ(refusal, "cannot schedule new calls after shutdown");
    bool refused_again = false;
    try {
        (void)loop.default_executor();
    } catch (const std::logic_error&) {
        refused_again = true;
    }
    EXPECT_TRUE(refused_again);
}

namespace {
Coro<int> await_call_on(ThreadPool* pool, Gate* gate, LoopSignal* started, std::atomic<bool>* ran) {
    auto work = [gate, started, ran] {
        started->set_from_any_thread();
        ran->store(gate->wait());
        return 1;
    };
    auto call = run_in_executor(*pool, work);
    int v = co_await std::move(call);
    co_return v;
}

// Leaves a call running on `pool` with nobody waiting for it, and returns (the loop then goes).
Coro<bool> abandon_a_running_call(ThreadPool* pool, Gate* gate, std::atomic<bool>* ran) {
    LoopSignal started;
    Task<int> t = create_task(await_call_on(pool, gate, &started, ran));
    co_await started.future();
    t.cancel();
    bool cancelled = false;
    try {
        co_await t;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    co_return cancelled;
}
}  // namespace

// A pool of the application's outlives the loop: a call whose awaiter went away finishes after
// corio::run has closed and destroyed the loop, and its result is dropped without touching the
// loop (a use-after-free under ASan / TSan before).
TEST(ExecutorLoopLifetime, CallFinishingAfterItsLoopIsDestroyedIsDropped) {
    ThreadPool pool(1);
    Gate gate;
    std::atomic<bool> ran{false};
    EXPECT_TRUE(corio::run(abandon_a_running_call(&pool, &gate, &ran)));
    gate.open();
    pool.shutdown();  // joins the worker: its completion has been handled (dropped) by now
    EXPECT_TRUE(ran.load());
}

// A pool shut down from another thread after the task has started to wait (here from the suspend
// hook, which runs at that very point): the await fails with the pool's std::logic_error, and
// the task is left waiting on nothing. A later cancel() is delivered at its next await and
// touches neither the refused call nor the loop's count of outstanding work. (to_thread: its
// call is submitted as it is awaited; run_in_executor's as it is made.)
CORIO_TEST(Executor, PoolShutDownAsTheTaskSuspendsFailsTheAwaitCleanly) {
    EventLoop& loop = get_running_loop();
    ThreadPool& pool = loop.default_executor();
    auto call = to_thread([] { return 1; });
    loop.set_suspend_hook([&pool](detail::TaskBase&) { pool.shutdown(); });
    std::string refusal;
    try {
        int v = co_await call;
        (void)v;
    } catch (const std::logic_error& e) {
        refusal = e.what();
    }
    loop.set_suspend_hook({});
    EXPECT_EQ(refusal, "cannot schedule new calls after shutdown");
    EXPECT_EQ(loop.external_work(), 0u);
    EXPECT_TRUE(current_task().cancel("after refusal"));
    EXPECT_EQ(loop.external_work(), 0u);
    std::optional<std::string> msg;
    try {
        auto s = sleep(0s);
        co_await s;
    } catch (const CancelledError& e) {
        msg = e.what();
    }
    EXPECT_EQ(msg, std::optional<std::string>("after refusal"));
    current_task().uncancel();
}

namespace {
// Starts a blocking call on the pool's only thread, then queues a second call behind it whose
// function holds `token`; `*ready` once both are in place.
Coro<> queue_behind_a_busy_call(ThreadPool* pool, Gate* gate, std::shared_ptr<int> token, bool* ready) {
    LoopSignal started;
    auto first = [&started, gate] {
        started.set_from_any_thread();
        return gate->wait() ? 1 : -1;
    };
    auto first_call = run_in_executor(*pool, first);
    Task<int> busy = create_task([](decltype(first_call) call) -> Coro<int> { co_return co_await std::move(call); }(std::move(first_call)));
    co_await started.future();
    auto second = [token] { return *token; };
    auto second_call = run_in_executor(*pool, second);
    token.reset();
    *ready = true;
    int never = co_await std::move(second_call);  // the loop closes while this waits
    (void)never;
    (void)co_await busy;
}
}  // namespace

// A loop closed with a task still waiting on a queued call (no cancel reaches it: the frame is
// destroyed): the call is dropped, so it never runs, and its function's captures are released
// there, on the loop's thread, not later on the worker.
TEST(ExecutorLoopLifetime, ACallQueuedWhenItsLoopClosesIsDroppedAndReleasedThere) {
    ThreadPool pool(1);
    Gate gate;
    std::optional<std::thread::id> released_on;
    std::shared_ptr<int> token(new int(2), [&released_on](int* p) {
        delete p;
        released_on = std::this_thread::get_id();
    });
    {
        EventLoop loop;
        loop.set_exception_handler([](EventLoop&, const ExceptionContext&) {});  // "destroyed but pending"
        bool ready = false;
        loop.call_soon([&, token] { (void)create_task(queue_behind_a_busy_call(&pool, &gate, token, &ready)); });
        token.reset();
        loop.run_until([&] { return ready; });
        loop.close();
        EXPECT_EQ(released_on, std::optional<std::thread::id>(std::this_thread::get_id()));
    }
    gate.open();
    pool.shutdown();
}

// ---------------------------------------------------------------------------------------------
// Shutting down: from a pool's own call, twice at once, and corio::run()'s own shutdown
// ---------------------------------------------------------------------------------------------

// concurrent.futures: shutdown() from one of the pool's own calls raises RuntimeError("cannot
// join current thread"). corio's joined its own thread, and std::terminate ended the process.
CORIO_TEST(Executor, ShutdownFromOneOfThePoolsOwnCallsIsRefused) {
    ThreadPool pool(2);
    auto shuts_its_own_pool = [&pool] {
        pool.shutdown();
        return 1;
    };
    auto call = run_in_executor(pool, shuts_its_own_pool);
    EXPECT_THROW(co_await std::move(call), std::logic_error);
    EXPECT_TRUE(pool.accepting()) << "refused before anything changed";
    auto after = run_in_executor(pool, [] { return 2; });
    int two = co_await std::move(after);
    EXPECT_EQ(two, 2);
}

// A second shutdown() while the first joins the threads waits for them, as concurrent.futures'
// does: it returned at once, with the pool's call still running (and a destructor racing like
// that would free the pool under the first caller).
TEST(ExecutorShutdown, ASecondShutdownWaitsForTheFirstToJoin) {
    ThreadPool pool(1);
    std::atomic<bool> call_finished{false};
    std::promise<void> started;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::thread submitter([&] {
        Runner runner;
        runner.run([](ThreadPool* p, std::promise<void>* s, std::shared_future<void> r, std::atomic<bool>* finished) -> Coro<> {
            auto call = run_in_executor(*p, [s, r, finished] {
                s->set_value();
                r.wait();
                finished->store(true);
            });
            co_await std::move(call);
        }(&pool, &started, released, &call_finished));
    });
    started.get_future().wait();
    std::thread first([&] { pool.shutdown(); });
    // The first shutdown has begun to join once the pool refuses calls; then the second comes.
    while (pool.accepting()) std::this_thread::yield();
    std::thread second([&] {
        pool.shutdown();
        EXPECT_TRUE(call_finished.load()) << "the second shutdown returned before the call finished";
    });
    release.set_value();
    second.join();
    first.join();
    submitter.join();
}

namespace {
Coro<int> sleeps_ten_seconds() {
    co_await sleep(10s);
    co_return 1;
}
Coro<> leaves_a_task_and_a_threadsafe_call(std::future<int>* threadsafe, bool* callback_ran) {
    EventLoop& loop = get_running_loop();
    std::thread other([&] { *threadsafe = run_coroutine_threadsafe(sleeps_ten_seconds(), loop); });
    other.join();
    Task<int> t = create_task(sleeps_ten_seconds());
    t.add_done_callback([callback_ran](Task<int>& done) { *callback_ran = done.cancelled(); });
    co_await sleep(0s);  // both tasks sleep; then the run ends and its shutdown cancels them
}
}  // namespace

// asyncio's runner cancels the tasks left and gathers them, which completes only after their
// done callbacks ran: the concurrent future says CancelledError, the callback runs. corio's
// shutdown closed the loop with those callbacks still queued: "Broken promise", and a callback
// never called (unless a default executor's shutdown happened to run the loop once more).
TEST(RunCoroutineThreadsafe, ATaskCancelledByTheRunsShutdownAnswersItsFuture) {
    std::future<int> threadsafe;
    bool callback_ran = false;
    corio::run(leaves_a_task_and_a_threadsafe_call(&threadsafe, &callback_ran));
    EXPECT_TRUE(callback_ran);
    EXPECT_THROW(threadsafe.get(), CancelledError);
}
