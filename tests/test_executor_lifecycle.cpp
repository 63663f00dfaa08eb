// The life of a thread call and of the executor under it: run_in_executor's call starts as it
// is made (asyncio's loop.run_in_executor submits before it returns), to_thread's as it is
// awaited (asyncio.to_thread is a coroutine); either is awaited once; and closing a loop whose
// worker waits on that very loop answers the worker instead of waiting for it for ever
// (asyncio's close() does not wait for its executor at all). Synchronisation with the workers
// uses latches, never sleeps (a spin has a safety bound, so a broken build fails, not hangs).
#include <corio/testing.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<int> answer() { co_return 42; }

// A task whose to_thread call, once let go, posts a coroutine back to the loop, says so, and
// waits for it.
Coro<int> calls_back_into(EventLoop* loop, bool* submitting, std::latch* go, std::latch* posted,
                          std::atomic<int>* outcome) {
    auto call = to_thread([loop, go, posted, outcome] {
        go->wait();
        std::future<int> f = run_coroutine_threadsafe(answer(), *loop);
        posted->count_down();
        try {
            outcome->store(f.get());
        } catch (const std::future_error&) {
            outcome->store(-1);  // the loop closed before running it
        }
        return 0;
    });
    *submitting = true;
    int r = co_await std::move(call);
    co_return r;
}

}  // namespace

TEST(ExecutorLoopClose, ClosingALoopWhoseWorkerWaitsOnItAnswersTheWorker) {
    std::latch go(1);
    std::latch posted(1);
    std::atomic<int> outcome{0};
    {
        EventLoop loop;
        int reports = 0;
        loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext&) { ++reports; });
        bool submitting = false;
        Task<int> task;
        loop.call_soon([&] { task = create_task(calls_back_into(&loop, &submitting, &go, &posted, &outcome)); });
        loop.run_until([&] { return submitting; });  // its call is with the executor
        go.count_down();
        posted.wait();  // the worker's callback is in the inbox, and the worker waits for it
        loop.close();   // joins the worker: it used to wait for ever
        EXPECT_EQ(reports, 1);  // the task, pending for ever: "Task was destroyed but it is pending!"
    }
    EXPECT_EQ(outcome.load(), -1);
}

CORIO_TEST(ThreadCall, AThreadCallAwaitedTwiceThrowsLogicError) {
    auto call = to_thread([] { return 42; });
    int first = co_await call;
    EXPECT_EQ(first, 42);
    bool refused = false;
    try {
        (void)co_await call;  // it used to be submitted again and never answered
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
}

CORIO_TEST(ThreadCall, AMovedFromThreadCallThrowsLogicError) {
    auto call = to_thread([] { return 1; });
    auto moved = std::move(call);
    bool refused = false;
    try {
        (void)co_await call;  // it used to dereference a null job
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    int got = co_await moved;
    EXPECT_EQ(got, 1);
}

// Two calls made before either is awaited run side by side: the first waits for the second to
// start (with one call submitted at a time, it would wait for ever: here, until the bound).
CORIO_TEST(RunInExecutor, ACallStartsAsItIsMadeNotWhenAwaited) {
    ThreadPool pool(2);
    std::latch second_started(1);
    auto first = run_in_executor(pool, [&second_started] {
        const auto bound = std::chrono::steady_clock::now() + 30s;
        while (!second_started.try_wait())
            if (std::chrono::steady_clock::now() > bound) return -1;
        return 1;
    });
    auto second = run_in_executor(pool, [&second_started] {
        second_started.count_down();
        return 2;
    });
    int a = co_await std::move(first);
    int b = co_await std::move(second);
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
}

// As asyncio's: a call made and never awaited runs all the same (its result is dropped).
CORIO_TEST(RunInExecutor, ACallNeverAwaitedStillRuns) {
    ThreadPool pool(1);
    std::atomic<bool> ran{false};
    {
        auto dropped = run_in_executor(pool, [&ran] { ran = true; });
    }
    pool.shutdown();  // runs what was queued, then joins
    EXPECT_TRUE(ran.load());
    co_return;
}

// A call already back when it is awaited gives its result at once.
CORIO_TEST(RunInExecutor, ACallBackBeforeItIsAwaitedGivesItsResult) {
    ThreadPool pool(1);
    auto call = run_in_executor(pool, [] { return 7; });
    for (int i = 0; i < 100000 && get_running_loop().external_work() != 0; ++i) co_await sleep(0s);
    EXPECT_EQ(get_running_loop().external_work(), 0u);  // back on the loop
    int v = co_await std::move(call);
    EXPECT_EQ(v, 7);
}
