// Bounds and edge results (docs/reference/executor.md, subprocess.md, semaphore.md): a
// ThreadPool never runs more calls at once than its max_threads (and does run that many side
// by side), ThreadPool(0) still has a thread, run_coroutine_threadsafe refuses a closed loop,
// a child reaped by someone else reports 255, and a Semaphore at INT_MAX refuses release().
//
// Synchronisation with the pool threads uses a condition variable and call_soon_threadsafe,
// never sleeps; the only timed wait is the safety bound (a broken build fails, never hangs).
#include <corio/subprocess.hpp>
#include <corio/testing.hpp>

#include "executor_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::kSafetyBound;
using corio_test::LoopSignal;

namespace {

// The calls' shared state: how many run now, the most that ever ran at once, and the permits
// the test hands out to let one call finish at a time.
struct Concurrency {
    std::mutex m;
    std::condition_variable cv;
    int active = 0;
    int peak = 0;
    int permits = 0;
    bool timed_out = false;
    LoopSignal* two_running = nullptr;  // set (once) when two calls run at the same time
};

// One call: counts itself in, waits for a permit (bounded), counts itself out.
int bounded_call(Concurrency* c) {
    std::unique_lock lock(c->m);
    int now = ++c->active;
    c->peak = std::max(c->peak, now);
    if (now == 2 && c->two_running) {
        c->two_running->set_from_any_thread();
        c->two_running = nullptr;
    }
    if (!c->cv.wait_for(lock, kSafetyBound, [c] { return c->permits > 0; })) c->timed_out = true;
    if (c->permits > 0) --c->permits;
    --c->active;
    return now;
}

Coro<int> call_on(ThreadPool* pool, Concurrency* c) {
    auto call = run_in_executor(*pool, [c] { return bounded_call(c); });
    int seen = co_await std::move(call);
    co_return seen;
}

Coro<int> forty_two() { co_return 42; }

}  // namespace

// executor.md:72-74: ThreadPool(2) runs 8 calls submitted together two side by side, never three.
CORIO_TEST(ThreadPoolBounds, TwoThreadPoolNeverRunsMoreThanTwoCallsAtOnce) {
    ThreadPool pool(2);
    EXPECT_EQ(pool.max_threads(), 2u);
    Concurrency c;
    LoopSignal two_running;
    c.two_running = &two_running;
    std::vector<Task<int>> calls;
    for (int i = 0; i < 8; ++i) calls.push_back(create_task(call_on(&pool, &c)));
    auto& both = two_running.future();
    co_await both;  // two calls are side by side (the pool does use both threads)
    for (int released = 0; released < 8; ++released) {
        {
            std::lock_guard lock(c.m);
            EXPECT_LE(c.active, 2) << "after " << released << " calls finished";
            ++c.permits;
        }
        c.cv.notify_all();
        auto one_done = wait(calls, std::nullopt, ReturnWhen::FirstCompleted);
        auto result = co_await std::move(one_done);
        auto& [done, pending] = result;
        calls = pending;
    }
    std::lock_guard lock(c.m);
    EXPECT_EQ(c.peak, 2);
    EXPECT_FALSE(c.timed_out);
}

// executor.md:77: ThreadPool(0) has at least one thread: max_threads() >= 1 and a call runs.
CORIO_TEST(ThreadPoolBounds, ZeroThreadPoolStillHasOneThread) {
    ThreadPool pool(0);
    EXPECT_GE(pool.max_threads(), 1u);
    auto call = run_in_executor(pool, [] { return 5; });
    int got = co_await std::move(call);
    EXPECT_EQ(got, 5);
}

// executor.md:102: run_coroutine_threadsafe on a closed loop throws std::logic_error.
TEST(RunCoroutineThreadsafe, ClosedLoopThrowsLogicError) {
    EventLoop loop;
    loop.close();
    EXPECT_THROW((void)run_coroutine_threadsafe(forty_two(), loop), std::logic_error);
}

// subprocess.md:102-103: a child reaped by our own waitpid() reports 255 from returncode() and wait().
CORIO_TEST(SubprocessReapedElsewhere, ReturncodeIs255WhenSomeoneElseReapedTheChild) {
    Coro<Process> spawning = create_subprocess_exec({"sh", "-c", "exit 7"});
    Process p = co_await std::move(spawning);
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(p.pid(), &status, 0);  // the child exits at once: a short block
    } while (r < 0 && errno == EINTR);
    CO_ASSERT_EQ(r, p.pid());
    CO_ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 7);  // its real code, which corio can no longer see
    EXPECT_EQ(p.returncode(), 255);
    Coro<int> waiting = p.wait();
    int code = co_await std::move(waiting);
    EXPECT_EQ(code, 255);
}

// subprocess.md:102-103: 255 too when wait() is already waiting as someone else reaps the child.
CORIO_TEST(SubprocessReapedElsewhere, WaitReturns255WhenTheChildIsReapedWhileItWaits) {
    Coro<Process> spawning = create_subprocess_exec({"sleep", "30"});
    Process p = co_await std::move(spawning);
    auto waits = [](Process proc) -> Coro<int> {
        Coro<int> waiting = proc.wait();
        int code = co_await std::move(waiting);
        co_return code;
    };
    Task<int> waiter = create_task(waits(p));
    auto tick = sleep(0s);
    co_await std::move(tick);  // the task is waiting now
    EXPECT_FALSE(waiter.done());
    CO_ASSERT_EQ(::kill(p.pid(), SIGKILL), 0);
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(p.pid(), &status, 0);
    } while (r < 0 && errno == EINTR);
    CO_ASSERT_EQ(r, p.pid());
    EXPECT_TRUE(WIFSIGNALED(status));  // corio alone would have said -9
    int code = co_await waiter;
    EXPECT_EQ(code, 255);
    EXPECT_EQ(p.returncode(), 255);
}

// semaphore.md:29-30: at INT_MAX release() throws logic_error "Semaphore value overflow", value kept.
CORIO_TEST(SemaphoreBounds, ReleaseAtIntMaxThrowsValueOverflow) {
    Semaphore sem(INT_MAX);
    std::string error = "no exception";
    try {
        sem.release();
    } catch (const std::logic_error& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "Semaphore value overflow");
    EXPECT_EQ(sem.value(), INT_MAX);
    {
        auto acquiring = sem.acquire();
        auto guard = co_await std::move(acquiring);
        EXPECT_EQ(sem.value(), INT_MAX - 1);
    }
    EXPECT_EQ(sem.value(), INT_MAX);  // the guard's release brought it back to the top, no further
}

namespace {
const std::string& the_name() {
    static const std::string name = "corio";
    return name;
}
int& the_counter() {
    static int counter = 41;
    counter = 42;  // the same on every call (--gtest_repeat runs the test again in one process)
    return counter;
}
}  // namespace

// executor.md: a function that returns a reference gives the awaiting task a copy of the value
// (asyncio accepts any callable; it did not compile: std::optional<const std::string&>).
CORIO_TEST(ToThreadResults, AFunctionReturningAReferenceGivesACopy) {
    auto naming = to_thread(the_name);
    auto name = co_await std::move(naming);
    static_assert(std::is_same_v<decltype(name), std::string>);
    EXPECT_EQ(name, "corio");
    ThreadPool pool(1);
    auto counting = run_in_executor(pool, the_counter);
    auto count = co_await std::move(counting);
    static_assert(std::is_same_v<decltype(count), int>);
    EXPECT_EQ(count, 42);
}
