// The life of a thread call and of the executor under it: a to_thread / run_in_executor call is
// awaited once (as a coroutine is), and closing a loop whose worker waits on that very loop
// answers the worker instead of waiting for it for ever (asyncio's close() does not wait for
// its executor at all). Synchronisation with the worker uses latches, never sleeps.
#include <corio/testing.hpp>

#include <atomic>
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
    ThreadPool pool(1);
    auto call = run_in_executor(pool, [] { return 1; });
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
