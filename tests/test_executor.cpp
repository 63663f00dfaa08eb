// Blocking code: to_thread, run_in_executor, ThreadPool, run_coroutine_threadsafe.
// Results, exceptions, exactly-once calls, arguments, concurrency, cancellation (the wait stops,
// the thread does not; std::stop_token; a queued call is dropped), and submitting coroutines from
// other threads. Ports CPython's Lib/test/test_asyncio/test_threads.py, test_futures.py
// (wrap_future cancel) and test_tasks.py::RunCoroutineThreadsafeTests. Pool threads, loop
// lifetimes and shutting down are in test_executor_shutdown.cpp.
//
// Synchronisation with the worker threads uses latches, condition variables and
// call_soon_threadsafe, never sleeps; the only timed waits are safety bounds (a broken build
// fails instead of hanging forever).
#include <corio/testing.hpp>

#include "executor_support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::Gate;
using corio_test::kSafetyBound;
using corio_test::LoopSignal;

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

Coro<std::pair<std::string, unsigned>> where_created() {
    co_await sleep(0s);
    co_return std::pair<std::string, unsigned>(current_task().created_at().file_name(), current_task().created_at().line());
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

// Debug reports and corio-ps show a submitted coroutine's task as created by the line that
// submitted it (it was executor.hpp's line).
TEST(RunCoroutineThreadsafe, TheTaskCountsAsCreatedByTheCallersLine) {
    std::promise<LoopOnThread> ready;
    std::latch done_posting(1);
    std::thread loop_thread([&] {
        Runner runner(RunOptions{.debug = true});  // creation sites are recorded in debug mode
        runner.run(serve_until_stopped(&ready));
        done_posting.wait();
    });
    LoopOnThread remote = ready.get_future().get();
    const unsigned line = std::source_location::current().line() + 1;
    std::future<std::pair<std::string, unsigned>> where = run_coroutine_threadsafe(where_created(), *remote.loop);
    const std::pair<std::string, unsigned> created = where.get();
    remote.loop->call_soon_threadsafe([stop = remote.stop] { stop->set_result(); });
    done_posting.count_down();
    loop_thread.join();
    EXPECT_EQ(created.first, std::string(std::source_location::current().file_name()));
    EXPECT_EQ(created.second, line);
}
