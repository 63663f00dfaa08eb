// Blocking code: to_thread, run_in_executor, ThreadPool, run_coroutine_threadsafe.
// Results, exceptions, exactly-once calls, arguments, concurrency, cancellation (the wait stops,
// the thread does not; std::stop_token; a queued call is dropped), and submitting coroutines from
// other threads. Ports CPython's Lib/test/test_asyncio/test_threads.py, test_futures.py
// (wrap_future cancel) and test_tasks.py::RunCoroutineThreadsafeTests.
//
// Synchronisation with the worker threads uses latches, condition variables and
// call_soon_threadsafe, never sleeps; the only timed waits are safety bounds (a broken build
// fails instead of hanging forever).
#include <corio/testing.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

constexpr auto kSafetyBound = 30s;

// A gate a worker thread waits at until the test opens it.
class Gate {
public:
    void open() {
        {
            std::lock_guard lock(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    // True when opened; false when the safety bound ran out.
    bool wait() {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, kSafetyBound, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

// A one-shot signal from a worker thread to a task on the loop: the worker calls set() (through
// call_soon_threadsafe), the task awaits future(). The Future is touched on the loop thread only.
class LoopSignal {
public:
    LoopSignal() : loop_(get_running_loop()), fut_(loop_) {}
    void set_from_any_thread() {
        loop_.call_soon_threadsafe([f = &fut_] {
            if (!f->done()) f->set_result();
        });
    }
    Future<>& future() { return fut_; }

private:
    EventLoop& loop_;
    Future<> fut_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// to_thread (TH1)
// ---------------------------------------------------------------------------------------------

// TH1 / test_threads.py::ToThreadTests::test_to_thread: the value comes back, computed on
// another thread.
CORIO_TEST(ToThread, ReturnsTheValueFromAnotherThread) {
    const auto loop_thread = std::this_thread::get_id();
    auto work = [] { return std::this_thread::get_id(); };
    auto call = to_thread(work);
    std::thread::id ran_on = co_await std::move(call);
    EXPECT_NE(ran_on, loop_thread);
    auto sum = to_thread([](int a, int b) { return a + b; }, 2, 3);
    int r = co_await std::move(sum);
    EXPECT_EQ(r, 5);
}

// TH1 / test_threads.py::ToThreadTests::test_to_thread_exception.
CORIO_TEST(ToThread, PropagatesExceptions) {
    auto boom = []() -> int { throw std::runtime_error("from the thread"); };
    bool caught = false;
    try {
        auto call = to_thread(boom);
        int v = co_await std::move(call);
        (void)v;
    } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "from the thread";
    }
    EXPECT_TRUE(caught);
}

// TH1 / test_threads.py::ToThreadTests::test_to_thread_once.
CORIO_TEST(ToThread, RunsTheFunctionExactlyOnce) {
    std::atomic<int> calls{0};
    auto count = [&calls] { calls.fetch_add(1); };
    for (int i = 0; i < 5; ++i) {
        auto call = to_thread(count);
        co_await std::move(call);
        EXPECT_EQ(calls.load(), i + 1);
    }
}

// TH1 / test_threads.py::ToThreadTests::test_to_thread_args_kwargs: arguments are passed along,
// moved (move-only ones work).
CORIO_TEST(ToThread, PassesArguments) {
    auto join = [](std::string a, int n, std::unique_ptr<std::string> b) { return a + std::to_string(n) + *b; };
    auto call = to_thread(join, std::string("x-"), 7, std::make_unique<std::string>("-y"));
    std::string r = co_await std::move(call);
    EXPECT_EQ(r, "x-7-y");
}

namespace {
// Runs on a pool thread: arrives at `arrived`, then waits (bounded) until all `n` have arrived.
Coro<bool> meet_in_thread(std::atomic<int>* arrived, int n, std::mutex* m, std::condition_variable* cv) {
    auto meet = [arrived, n, m, cv] {
        std::unique_lock lock(*m);
        arrived->fetch_add(1);
        cv->notify_all();
        return cv->wait_for(lock, kSafetyBound, [&] { return arrived->load() == n; });
    };
    auto call = to_thread(meet);
    bool all_met = co_await std::move(call);
    co_return all_met;
}
}  // namespace

// TH1 / test_threads.py::ToThreadTests::test_to_thread_concurrent: several calls in flight at
// once all finish (each waits until all of them are running: they must run concurrently).
CORIO_TEST(ToThread, SeveralCallsRunConcurrently) {
    constexpr int n = 4;
    std::atomic<int> arrived{0};
    std::mutex m;
    std::condition_variable cv;
    std::vector<Coro<bool>> calls;
    for (int i = 0; i < n; ++i) calls.push_back(meet_in_thread(&arrived, n, &m, &cv));
    auto gathering = gather(std::move(calls));
    std::vector<bool> met = co_await std::move(gathering);
    EXPECT_EQ(met, std::vector<bool>(n, true));
    EXPECT_EQ(arrived.load(), n);
}

// ---------------------------------------------------------------------------------------------
// Cancellation (TH3, API.md "Blocking code")
// ---------------------------------------------------------------------------------------------

namespace {
struct BlockingJob {
    Gate gate;
    std::atomic<bool> finished{false};
    std::atomic<bool> gate_opened{false};
};

Coro<int> await_blocking(BlockingJob* job, LoopSignal* started, LoopSignal* ended) {
    auto work = [job, started, ended] {
        started->set_from_any_thread();
        job->gate_opened = job->gate.wait();
        job->finished = true;
        ended->set_from_any_thread();
        return 1;
    };
    auto call = to_thread(work);
    int v = co_await std::move(call);
    co_return v;
}
}  // namespace

// TH3 / python/cpython#107505, test_futures.py::test_wrap_future_cancel2: cancelling the task
// that awaits to_thread ends the wait at once; the thread runs on to its end, result dropped.
CORIO_TEST(ToThread, CancellingTheAwaitingTaskStopsTheWaitNotTheThread) {
    BlockingJob job;
    LoopSignal started, ended;
    Task<int> t = create_task(await_blocking(&job, &started, &ended));
    co_await started.future();
    EXPECT_TRUE(t.cancel());
    bool cancelled = false;
    try {
        co_await t;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(t.cancelled());
    EXPECT_FALSE(job.finished.load());  // the wait is over while the call still runs
    job.gate.open();
    co_await ended.future();
    EXPECT_TRUE(job.finished.load());
    EXPECT_TRUE(job.gate_opened.load());
}

// API.md "Blocking code": a function taking a std::stop_token first gets a stop request when
// the awaiting task is cancelled.
CORIO_TEST(ToThread, StopTokenFunctionGetsStopRequestedOnCancel) {
    LoopSignal started, ended;
    std::atomic<bool> saw_stop{false};
    auto work = [&](std::stop_token st, int x) {
        started.set_from_any_thread();
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait_for(lock, st, kSafetyBound, [] { return false; });
        saw_stop = st.stop_requested();
        ended.set_from_any_thread();
        return x;
    };
    auto body = [&work]() -> Coro<int> {
        auto call = to_thread(work, 5);
        int v = co_await std::move(call);
        co_return v;
    };
    Task<int> t = create_task(body());
    co_await started.future();
    EXPECT_TRUE(t.cancel());
    bool cancelled = false;
    try {
        co_await t;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    co_await ended.future();
    EXPECT_TRUE(saw_stop.load());
}

// A stop_token function that is not cancelled sees no stop request and returns normally.
CORIO_TEST(ToThread, StopTokenFunctionNotCancelledRunsNormally) {
    auto work = [](std::stop_token st, int x) { return st.stop_requested() ? -1 : x * 2; };
    auto call = to_thread(work, 21);
    int v = co_await std::move(call);
    EXPECT_EQ(v, 42);
}

// TH3 / test_futures.py::BaseFutureTests::test_wrap_future_cancel: a call still queued (not
// started) when its awaiter is cancelled is dropped: it never runs.
CORIO_TEST(Executor, QueuedButNotStartedCallIsDropped) {
    ThreadPool pool(1);
    Gate gate;
    LoopSignal first_started;
    std::atomic<bool> second_ran{false};
    auto first = [&] {
        first_started.set_from_any_thread();
        return gate.wait() ? 1 : -1;
    };
    auto second = [&] {
        second_ran = true;
        return 2;
    };
    auto run_first = [&]() -> Coro<int> {
        auto call = run_in_executor(pool, first);
        int v = co_await std::move(call);
        co_return v;
    };
    auto run_second = [&]() -> Coro<int> {
        auto call = run_in_executor(pool, second);
        int v = co_await std::move(call);
        co_return v;
    };
    Task<int> a = create_task(run_first());
    Task<int> b = create_task(run_second());
    co_await sleep(0s);                // both have submitted their calls; b's waits in the queue
    co_await first_started.future();  // the only worker is busy with a's call
    EXPECT_TRUE(b.cancel());
    bool cancelled = false;
    try {
        co_await b;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    gate.open();
    int va = co_await a;
    EXPECT_EQ(va, 1);
    pool.shutdown();  // the worker has gone through its queue and exited
    EXPECT_FALSE(second_ran.load());
}

// A call dropped before it started lets go of its function (and what it captured) on the loop
// thread, as it is cancelled: the captures may be the loop's objects, whose reference counts are
// not atomic, and the worker would only have released them when it reached the call.
CORIO_TEST(Executor, ADroppedCallReleasesItsFunctionOnTheLoopThread) {
    ThreadPool pool(1);
    Gate gate;
    LoopSignal first_started;
    std::optional<std::thread::id> released_on;
    auto first = [&] {
        first_started.set_from_any_thread();
        return gate.wait() ? 1 : -1;
    };
    auto run_first = [&]() -> Coro<int> {
        auto call = run_in_executor(pool, first);
        int v = co_await std::move(call);
        co_return v;
    };
    auto run_second = [&]() -> Coro<int> {
        std::shared_ptr<int> token(new int(2), [&released_on](int* p) {
            delete p;
            released_on = std::this_thread::get_id();
        });
        auto call = run_in_executor(pool, [token] { return *token; });
        token.reset();
        int v = co_await std::move(call);
        co_return v;
    };
    Task<int> a = create_task(run_first());
    Task<int> b = create_task(run_second());
    co_await sleep(0s);
    co_await first_started.future();
    EXPECT_TRUE(b.cancel());
    try {
        co_await b;
    } catch (const CancelledError&) {
    }
    EXPECT_EQ(released_on, std::optional<std::thread::id>(std::this_thread::get_id()));
    gate.open();
    int va = co_await a;
    EXPECT_EQ(va, 1);
    pool.shutdown();
}

// ---------------------------------------------------------------------------------------------
// run_in_executor with a custom ThreadPool (TH2)
// ---------------------------------------------------------------------------------------------

// TH2: run_in_executor(pool, f, args...) runs f on the pool's threads; values and errors come
// back; a one-thread pool runs every call on the same thread.
CORIO_TEST(Executor, RunInExecutorUsesTheGivenPool) {
    const auto loop_thread = std::this_thread::get_id();
    ThreadPool pool(1);
    EXPECT_EQ(pool.max_threads(), 1u);
    auto where = [] { return std::this_thread::get_id(); };
    auto c1 = run_in_executor(pool, where);
    std::thread::id t1 = co_await std::move(c1);
    auto c2 = run_in_executor(pool, where);
    std::thread::id t2 = co_await std::move(c2);
    EXPECT_NE(t1, loop_thread);
    EXPECT_EQ(t1, t2);

    auto mul = [](int a, int b) { return a * b; };
    auto c3 = run_in_executor(pool, mul, 6, 7);
    int v = co_await std::move(c3);
    EXPECT_EQ(v, 42);

    auto fail = []() -> int { throw std::logic_error("pool failure"); };
    bool caught = false;
    try {
        auto c4 = run_in_executor(pool, fail);
        int x = co_await std::move(c4);
        (void)x;
    } catch (const std::logic_error& e) {
        caught = std::string(e.what()) == "pool failure";
    }
    EXPECT_TRUE(caught);
}

// A pool of several threads runs calls side by side (all must be running at once to finish).
CORIO_TEST(Executor, RunInExecutorRunsConcurrentlyOnAPool) {
    constexpr int n = 3;
    ThreadPool pool(n);
    std::atomic<int> arrived{0};
    std::mutex m;
    std::condition_variable cv;
    auto meet = [&] {
        std::unique_lock lock(m);
        arrived.fetch_add(1);
        cv.notify_all();
        return cv.wait_for(lock, kSafetyBound, [&] { return arrived.load() == n; });
    };
    auto one = [&]() -> Coro<bool> {
        auto call = run_in_executor(pool, meet);
        bool ok = co_await std::move(call);
        co_return ok;
    };
    std::vector<Coro<bool>> calls;
    for (int i = 0; i < n; ++i) calls.push_back(one());
    auto gathering = gather(std::move(calls));
    std::vector<bool> met = co_await std::move(gathering);
    EXPECT_EQ(met, std::vector<bool>(n, true));
}

// After shutdown a pool refuses new calls.
CORIO_TEST(Executor, ShutDownPoolRefusesNewCalls) {
    ThreadPool pool(1);
    pool.shutdown();
    bool refused = false;
    try {
        auto call = run_in_executor(pool, [] { return 1; });
        int v = co_await std::move(call);
        (void)v;
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
}

namespace {
Coro<std::string> refused_then_cancelled(ThreadPool* pool) {
    bool refused = false;
    try {
        auto call = run_in_executor(*pool, [] { return 1; });
        int v = co_await std::move(call);
        (void)v;
    } catch (const std::logic_error&) {
        refused = true;
    }
    if (!refused) co_return "not refused";
    current_task().cancel("after refusal");
    co_await sleep(0s);
    co_return "not cancelled";
}
}  // namespace

// API.md "every awaitable ... cleans up after itself": a call refused by a shut-down pool leaves
// the task an ordinary running task; cancelling it afterwards delivers CancelledError at its
// next await (T4, T6).
CORIO_TEST(Executor, TaskRefusedByAShutDownPoolCanStillBeCancelled) {
    ThreadPool pool(1);
    pool.shutdown();
    Task<std::string> t = create_task(refused_then_cancelled(&pool));
    std::optional<std::string> msg;
    try {
        co_await t;
    } catch (const CancelledError& e) {
        msg = e.what();
    }
    EXPECT_EQ(msg, std::optional<std::string>("after refusal"));
    EXPECT_TRUE(t.cancelled());
}

// ---------------------------------------------------------------------------------------------
// run_coroutine_threadsafe (TH4): a loop running in a Runner on its own std::thread
// ---------------------------------------------------------------------------------------------

namespace {
struct LoopOnThread {
    EventLoop* loop = nullptr;
    Future<>* stop = nullptr;
    std::thread::id thread;
};

Coro<> serve_until_stopped(std::promise<LoopOnThread>* ready) {
    EventLoop& loop = get_running_loop();
    Future<> stop(loop);
    ready->set_value(LoopOnThread{&loop, &stop, std::this_thread::get_id()});
    co_await stop;
}

Coro<int> doubled_on(int x, EventLoop* expected_loop, std::thread::id expected_thread) {
    if (&get_running_loop() != expected_loop) throw std::logic_error("ran on the wrong loop");
    if (std::this_thread::get_id() != expected_thread) throw std::logic_error("ran on the wrong thread");
    co_await sleep(0s);
    co_return 2 * x;
}

Coro<int> fails_on_loop() {
    co_await sleep(0s);
    throw std::runtime_error("failed on the loop");
}

Coro<> cancels_itself() {
    current_task().cancel("self");
    co_await sleep(0s);
}

Coro<std::unique_ptr<int>> boxed(int x) {
    co_await sleep(0s);
    co_return std::make_unique<int>(x);
}
}  // namespace

// TH4 / test_tasks.py::RunCoroutineThreadsafeTests::test_run_coroutine_threadsafe,
// test_run_coroutine_threadsafe_with_exception, test_run_coroutine_threadsafe_task_cancelled:
// a coroutine submitted from this thread runs as a task on the other thread's loop; its result,
// exception or cancellation comes back through the std::future.
//
// The loop thread keeps its Runner (and so the loop) alive until this thread has returned from
// its last call_soon_threadsafe (see LoopManual.LoopMayBeDestroyedRightAfterACrossThreadStop in
// test_loop.cpp for why). Exceptional futures are read after the join: the exception object is
// shared with the loop thread's Task, and TSan cannot see the reference counting that libstdc++
// (not instrumented) does on it.
TEST(RunCoroutineThreadsafe, SubmitsToALoopRunningOnAnotherThread) {
    std::promise<LoopOnThread> ready;
    std::latch done_posting(1);
    std::thread loop_thread([&] {
        Runner runner;
        runner.run(serve_until_stopped(&ready));
        done_posting.wait();
    });
    LoopOnThread remote = ready.get_future().get();
    ASSERT_NE(remote.thread, std::this_thread::get_id());

    std::future<int> doubled = run_coroutine_threadsafe(doubled_on(21, remote.loop, remote.thread), *remote.loop);
    EXPECT_EQ(doubled.get(), 42);

    // Several submitters at once.
    std::vector<std::future<int>> many;
    for (int i = 0; i < 20; ++i)
        many.push_back(run_coroutine_threadsafe(doubled_on(i, remote.loop, remote.thread), *remote.loop));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(many[i].get(), 2 * i);

    // A move-only result is moved through (it did not compile: the result was copied).
    std::future<std::unique_ptr<int>> box = run_coroutine_threadsafe(boxed(7), *remote.loop);
    std::unique_ptr<int> unboxed = box.get();
    ASSERT_TRUE(unboxed);
    EXPECT_EQ(*unboxed, 7);

    std::future<int> failed = run_coroutine_threadsafe(fails_on_loop(), *remote.loop);
    std::future<void> cancelled = run_coroutine_threadsafe(cancels_itself(), *remote.loop);
    failed.wait();
    cancelled.wait();

    remote.loop->call_soon_threadsafe([stop = remote.stop] { stop->set_result(); });
    done_posting.count_down();
    loop_thread.join();

    try {
        failed.get();
        ADD_FAILURE() << "the exception did not come through the std::future";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "failed on the loop");
    }
    try {
        cancelled.get();
        ADD_FAILURE() << "the cancellation did not come through the std::future";
    } catch (const CancelledError& e) {
        EXPECT_STREQ(e.what(), "self");
    }
}

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
