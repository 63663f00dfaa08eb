// A quick pass over every core feature, so that each template is instantiated once.
#include <corio/testing.hpp>

using namespace corio;
using namespace std::chrono_literals;

namespace {
Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}
Coro<int> fail_after(Clock::duration d) {
    co_await sleep(d);
    throw std::runtime_error("boom");
}
Coro<> nothing() { co_return; }
}  // namespace

CORIO_TEST(Sanity, GatherTupleAndRange) {
    corio::testing::MockClock clock;
    auto [a, b, c] = co_await gather(value_after(3s, 1), value_after(1s, 2), nothing());
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    (void)c;
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 5; ++i) coros.push_back(value_after(std::chrono::seconds(5 - i), i));
    auto all = co_await gather(std::move(coros));
    EXPECT_EQ(all, (std::vector<int>{0, 1, 2, 3, 4}));
    auto [ra, rb] = co_await gather(return_exceptions, value_after(1s, 7), fail_after(1s));
    EXPECT_TRUE(ra.has_value());
    EXPECT_EQ(ra.value(), 7);
    EXPECT_FALSE(rb.has_value());
}

CORIO_TEST(Sanity, GatherFailureCancelsSiblings) {
    corio::testing::MockClock clock;
    auto slow = create_task(value_after(100s, 1));
    bool threw = false;
    try {
        co_await gather(slow, fail_after(1s));
    } catch (const std::runtime_error&) {
        threw = true;
    }
    EXPECT_TRUE(threw);
    EXPECT_TRUE(slow.cancelled());
    EXPECT_LT(clock.seconds_since(Clock::time_point{}), 1e12);
}

CORIO_TEST(Sanity, TaskGroupCollectsErrors) {
    corio::testing::MockClock clock;
    Task<int> a;
    bool caught = false;
    try {
        co_await task_group([&](TaskGroup& tg) -> Coro<> {
            a = tg.create_task(value_after(10s, 1));
            tg.create_task(fail_after(1s));
            co_await sleep(100s);
        });
    } catch (const ExceptionGroup& eg) {
        caught = true;
        EXPECT_EQ(eg.exceptions().size(), 1u);
        EXPECT_TRUE(eg.contains<std::runtime_error>());
    }
    EXPECT_TRUE(caught);
    EXPECT_TRUE(a.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
}

CORIO_TEST(Sanity, TimeoutAndWaitFor) {
    corio::testing::MockClock clock;
    auto t0 = clock.now();
    bool timed_out = false;
    try {
        co_await wait_for(value_after(10s, 1), 2s);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 2.0);
    int v = co_await wait_for(value_after(1s, 5), 2s);
    EXPECT_EQ(v, 5);
    int w = co_await timeout(5s, [&](Timeout& t) -> Coro<int> {
        EXPECT_FALSE(t.expired());
        co_return co_await value_after(1s, 9);
    });
    EXPECT_EQ(w, 9);
    EXPECT_EQ(current_task().cancelling(), 0);
}

CORIO_TEST(Sanity, WaitAndAsCompletedAndShield) {
    corio::testing::MockClock clock;
    std::vector<Task<int>> ts{create_task(value_after(3s, 3)), create_task(value_after(1s, 1))};
    auto r = co_await wait(ts, 2s);
    EXPECT_EQ(r.done.size(), 1u);
    EXPECT_EQ(r.pending.size(), 1u);
    std::vector<Coro<int>> cs;
    cs.push_back(value_after(3s, 3));
    cs.push_back(value_after(1s, 1));
    cs.push_back(value_after(2s, 2));
    auto gen = as_completed(std::move(cs));
    std::vector<int> order;
    while (auto v = co_await gen.next()) order.push_back(*v);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    auto inner = create_task(value_after(5s, 42));
    bool cancelled = false;
    try {
        co_await wait_for(shield(inner), 1s);
    } catch (const TimeoutError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(co_await inner, 42);
    co_await ts[1];
}

namespace {
AsyncGenerator<int> countdown(int n, std::vector<std::string>* log) {
    try {
        while (n > 0) {
            co_await sleep(100ms);
            int v = n--;
            co_yield v;
        }
    } catch (const GeneratorExit&) {
        log->push_back("exit");
        throw;
    }
    log->push_back("done");
}

struct Resource {
    std::vector<std::string>* log;
    Coro<> aclose() {
        co_await sleep(0s);
        log->push_back("closed");
    }
};
Coro<Resource> open_resource(std::vector<std::string>* log) {
    co_await sleep(0s);
    log->push_back("opened");
    co_return Resource{log};
}
}  // namespace

CORIO_TEST(Sanity, GeneratorsAndContextManagers) {
    corio::testing::MockClock clock;
    std::vector<std::string> log;
    auto gen = countdown(3, &log);
    std::vector<int> got;
    while (auto v = co_await gen.next()) got.push_back(*v);
    EXPECT_EQ(got, (std::vector<int>{3, 2, 1}));
    auto early = countdown(5, &log);
    auto first = co_await early.next();
    EXPECT_EQ(*first, 5);
    co_await early.aclose();
    co_await async_with(open_resource(&log), [&](Resource&) -> Coro<> {
        log.push_back("body");
        co_return;
    });
    EXPECT_EQ(log, (std::vector<std::string>{"done", "exit", "opened", "body", "closed"}));
}

CORIO_TEST(Sanity, ToThreadAndExecutor) {
    int r = co_await to_thread([](int a, int b) { return a + b; }, 2, 3);
    EXPECT_EQ(r, 5);
    ThreadPool pool(2);
    auto s = co_await run_in_executor(pool, [] { return std::string("hi"); });
    EXPECT_EQ(s, "hi");
}
