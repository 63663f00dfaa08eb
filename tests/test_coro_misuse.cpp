// Misusing a Coro or a task (docs/reference/coro.md, task.md, gather.md, sleep.md,
// executor.md): awaiting a Coro twice or an empty one, create_task on an empty or already
// awaited Coro, the calls that need a running loop made without one; and `co_await
// std::move(task)`, which moves the result out only when no other handle can see it.
#include <corio/testing.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<int> forty_two() { co_return 42; }

Coro<int> forty_two_later() {
    co_await sleep(0s);
    co_return 42;
}

// A result that a move leaves visibly empty.
Coro<std::vector<int>> numbers() {
    co_await sleep(0s);
    co_return std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8};
}

template <class F>
std::string logic_error_of(F f) {
    try {
        f();
    } catch (const std::logic_error& e) {
        return e.what();
    } catch (...) {
        return "another exception";
    }
    return "no exception";
}

// Whether `f()` throws a std::logic_error.
template <class F>
bool throws_logic_error(F f) {
    std::string r = logic_error_of(f);
    return r != "no exception" && r != "another exception";
}

// Awaits `c` (by reference: the point is to await the caller's Coro again) and returns the
// logic_error's text, "ok" when it did not throw.
Coro<std::string> await_again(Coro<int>* c) {
    std::string out = "ok";
    try {
        int v = co_await *c;
        (void)v;
    } catch (const std::logic_error& e) {
        out = e.what();
    }
    co_return out;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

// coro.md:39-41: a Coro already awaited throws logic_error "a Coro can be awaited only once".
CORIO_TEST(CoroMisuse, AwaitingACoroTwiceThrowsAwaitedOnlyOnce) {
    Coro<int> c = forty_two_later();
    int first = co_await c;
    EXPECT_EQ(first, 42);
    Coro<std::string> again = await_again(&c);
    std::string error = co_await std::move(again);
    EXPECT_TRUE(contains(error, "a Coro can be awaited only once")) << error;

    Coro<int> quick = forty_two();  // one that finished without suspending, too
    int v = co_await quick;
    EXPECT_EQ(v, 42);
    Coro<std::string> again2 = await_again(&quick);
    std::string error2 = co_await std::move(again2);
    EXPECT_TRUE(contains(error2, "a Coro can be awaited only once")) << error2;
}

// coro.md:39-40: awaiting an empty Coro (default-made or moved from) throws std::logic_error.
CORIO_TEST(CoroMisuse, AwaitingAnEmptyOrMovedFromCoroThrowsLogicError) {
    Coro<int> empty;
    Coro<std::string> a = await_again(&empty);
    std::string e1 = co_await std::move(a);
    EXPECT_NE(e1, "ok");
    Coro<int> source = forty_two();
    Coro<int> target = std::move(source);
    Coro<std::string> b = await_again(&source);
    std::string e2 = co_await std::move(b);
    EXPECT_NE(e2, "ok");
    int v = co_await std::move(target);  // the frame moved with it and still runs
    EXPECT_EQ(v, 42);
}

// task.md:23-25: create_task on an empty Coro throws std::invalid_argument.
CORIO_TEST(CoroMisuse, CreateTaskOnAnEmptyCoroThrowsInvalidArgument) {
    bool invalid = false;
    try {
        Task<int> t = create_task(Coro<int>());
        (void)t;
    } catch (const std::invalid_argument&) {
        invalid = true;
    }
    EXPECT_TRUE(invalid);
    co_return;
}

// task.md:23-24: create_task on a Coro already awaited throws std::logic_error.
CORIO_TEST(CoroMisuse, CreateTaskOnAnAwaitedCoroThrowsLogicError) {
    Coro<int> c = forty_two_later();
    int v = co_await c;
    EXPECT_EQ(v, 42);
    EXPECT_TRUE(throws_logic_error([&] { (void)create_task(std::move(c)); }));
}

// task.md:23, 140-141: create_task and all_tasks need a running loop (std::logic_error).
TEST(NoRunningLoop, CreateTaskAndAllTasksThrowLogicError) {
    EXPECT_TRUE(throws_logic_error([] { (void)create_task(forty_two()); }));
    EXPECT_TRUE(throws_logic_error([] { (void)all_tasks(); }));
}

// gather.md:37-38: gather given a Coro needs a running loop (std::logic_error at the call).
TEST(NoRunningLoop, GatherOfACoroThrowsLogicError) {
    EXPECT_TRUE(throws_logic_error([] { (void)gather(forty_two(), forty_two()); }));
    EXPECT_TRUE(throws_logic_error([] {
        std::vector<Coro<int>> cs;
        cs.push_back(forty_two());
        (void)gather(std::move(cs));
    }));
}

// executor.md:23-24: to_thread without a running loop throws std::logic_error at the call.
TEST(NoRunningLoop, ToThreadThrowsLogicError) {
    EXPECT_TRUE(throws_logic_error([] { (void)to_thread([] { return 1; }); }));
}

// sleep.md:18-19: a positive sleep reads the loop's clock at the call: logic_error without one.
TEST(NoRunningLoop, PositiveSleepThrowsLogicError) {
    EXPECT_TRUE(throws_logic_error([] { (void)sleep(1s); }));
}

// task.md:112-113: `co_await std::move(task)` leaves the result intact for a live copy of the handle.
CORIO_TEST(TaskResultMove, MovingAwaitLeavesTheResultIntactForAnotherHandle) {
    Task<std::vector<int>> task = create_task(numbers());
    Task<std::vector<int>> copy = task;
    std::vector<int> got = co_await std::move(task);
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(copy.result(), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
    std::vector<int> again = co_await copy;  // a plain await copies it once more
    EXPECT_EQ(again, copy.result());
}

// task.md:112-114: two tasks awaiting one task (both with std::move) each get the whole result.
CORIO_TEST(TaskResultMove, MovingAwaitLeavesTheResultIntactForAnotherAwaiter) {
    Task<std::vector<int>> task = create_task(numbers());
    auto other = [](Task<std::vector<int>> t) -> Coro<std::vector<int>> {
        std::vector<int> r = co_await std::move(t);
        co_return r;
    };
    Task<std::vector<int>> watcher = create_task(other(task));
    std::vector<int> mine = co_await std::move(task);
    std::vector<int> theirs = co_await watcher;
    EXPECT_EQ(mine, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(theirs, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
}

// task.md:112-113: with no other handle, `co_await std::move(task)` moves a move-only result out.
CORIO_TEST(TaskResultMove, MovingAwaitOfTheOnlyHandleMovesAMoveOnlyResultOut) {
    auto make = []() -> Coro<std::unique_ptr<int>> {
        co_await sleep(0s);
        co_return std::make_unique<int>(7);
    };
    Task<std::unique_ptr<int>> task = create_task(make());
    std::unique_ptr<int> p = co_await std::move(task);
    CO_ASSERT_TRUE(p != nullptr);
    EXPECT_EQ(*p, 7);
}
