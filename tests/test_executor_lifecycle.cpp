// The life of a thread call and of the executor under it: run_in_executor's call starts as it
// is made (asyncio's loop.run_in_executor submits before it returns), to_thread's as it is
// awaited (asyncio.to_thread is a coroutine); either is awaited once; and closing a loop whose
// worker waits on that very loop answers the worker instead of waiting for it for ever
// (asyncio's close() does not wait for its executor at all). Synchronisation with the workers
// uses latches, never sleeps (a spin has a safety bound, so a broken build fails, not hangs).
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "executor_support.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::kSafetyBound;
using corio_test::LoopSignal;

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

bool g_forever_started = false;
Coro<int> forever() {
    g_forever_started = true;
    co_await sleep(std::chrono::hours(1));
    co_return 42;
}

// The same, but the coroutine the worker posted has started on the loop: the worker waits for
// the done callback of its task, which close() abandons.
Coro<int> starts_a_task_and_waits(EventLoop* loop, bool* submitting, std::atomic<int>* outcome) {
    auto call = to_thread([loop, outcome] {
        std::future<int> f = run_coroutine_threadsafe(forever(), *loop);
        try {
            outcome->store(f.get());
        } catch (const std::future_error&) {
            outcome->store(-1);
        }
        return 0;
    });
    *submitting = true;
    int r = co_await std::move(call);
    co_return r;
}

}  // namespace

TEST(ExecutorLoopClose, ClosingALoopAnswersAWorkerWaitingForATaskItStartedThere) {
    std::atomic<int> outcome{0};
    g_forever_started = false;
    {
        EventLoop loop;
        int reports = 0;
        loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext&) { ++reports; });
        bool submitting = false;
        Task<int> task;
        loop.call_soon([&] { task = create_task(starts_a_task_and_waits(&loop, &submitting, &outcome)); });
        loop.run_until([&] { return submitting && g_forever_started; });  // runs until the worker's task sleeps
        loop.close();  // it used to wait for ever for the worker
        EXPECT_EQ(reports, 2);  // both tasks, pending for ever
    }
    EXPECT_EQ(outcome.load(), -1);
}

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

// As asyncio's future would say: a call never awaited that fails is reported, not lost.
CORIO_TEST(RunInExecutor, AFailingCallNeverAwaitedIsReported) {
    std::optional<corio_test::CapturedReports> captured(std::in_place);
    ThreadPool pool(1);
    LoopSignal ran;
    {
        auto dropped = run_in_executor(pool, [&ran]() -> int {
            ran.set_from_any_thread();
            throw std::runtime_error("lost");
        });
    }
    co_await ran.future();
    const auto bound = std::chrono::steady_clock::now() + kSafetyBound;
    while (get_running_loop().external_work() != 0 && std::chrono::steady_clock::now() < bound) co_await sleep(0s);
    std::vector<ExceptionContext> reports = std::move(captured->reports);
    captured.reset();  // the harness's handler is back
    CO_ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].message.find("never retrieved"), std::string::npos) << reports[0].message;
    EXPECT_TRUE(reports[0].exception != nullptr);
}

// A call already back when it is awaited gives its result at once.
CORIO_TEST(RunInExecutor, ACallBackBeforeItIsAwaitedGivesItsResult) {
    ThreadPool pool(1);
    LoopSignal ran;
    auto call = run_in_executor(pool, [&ran] {
        ran.set_from_any_thread();
        return 7;
    });
    co_await ran.future();
    // Its return follows at once through the inbox (the bound only turns a bug into a failure).
    const auto bound = std::chrono::steady_clock::now() + kSafetyBound;
    while (get_running_loop().external_work() != 0 && std::chrono::steady_clock::now() < bound) co_await sleep(0s);
    EXPECT_EQ(get_running_loop().external_work(), 0u);  // back on the loop
    int v = co_await std::move(call);
    EXPECT_EQ(v, 7);
}

namespace {
int one() { return 1; }
using OneCall = decltype(run_in_executor(std::declval<ThreadPool&>(), one));

Coro<> make_call(std::optional<OneCall>* out, ThreadPool* pool) {
    out->emplace(run_in_executor(*pool, one));
    co_return;
}

Coro<std::string> await_call(std::optional<OneCall>* call) {
    try {
        int v = co_await std::move(**call);
        co_return "got " + std::to_string(v);
    } catch (const std::logic_error&) {
        co_return "refused";
    }
}
}  // namespace

// A call made on one loop and awaited by a task of another is refused (asyncio's F5): its
// return would wake the task from the first loop's thread, which the second never hears of.
TEST(RunInExecutorLoops, ACallAwaitedOnAnotherLoopThanItsOwnIsRefused) {
    ThreadPool pool(1);
    std::optional<OneCall> call;
    Runner made_on;
    Runner awaited_on;
    made_on.run(make_call(&call, &pool));
    EXPECT_EQ(awaited_on.run(await_call(&call)), "refused");
    call.reset();
    pool.shutdown();
}
