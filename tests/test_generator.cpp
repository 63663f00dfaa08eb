// AsyncGenerator: asyncio's async generator rules (asyncio-rules.md 1.AG): iteration, aclose()
// and athrow() (AG1), and no concurrency on one generator (AG3). Ported from CPython's
// Lib/test/test_asyncgen.py. Cancellation inside next(), generators dropped mid-iteration (AG4)
// and loop shutdown (R3, AG5) are in test_generator_lifetime.cpp.
// Coroutine tests use virtual time (MockClock).
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "generator_support.hpp"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

template <class T>
Coro<std::vector<T>> drain(AsyncGenerator<T>* g) {
    std::vector<T> out;
    while (auto v = co_await g->next()) out.push_back(*v);
    co_return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Iteration
// ---------------------------------------------------------------------------------------------

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_01 (iteration with awaits),
// then StopAsyncIteration for every next() after the end.
CORIO_TEST(AsyncGenerator, YieldsInOrderThenNulloptForever) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto g = counter(3, &log, 100ms);
    EXPECT_TRUE(log.empty()) << "calling the generator function runs nothing";
    std::vector<int> got = co_await drain(&g);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(ms_since(t0), 300.0);
    EXPECT_EQ(log, (Log{"yield 0", "resumed 0", "yield 1", "resumed 1", "yield 2", "resumed 2", "finished"}));
    EXPECT_TRUE(g.done());
    auto again = co_await g.next();
    EXPECT_FALSE(again.has_value());
    auto and_again = co_await g.next();
    EXPECT_FALSE(and_again.has_value());
    co_await g.aclose();  // no-op on an exhausted generator
    EXPECT_EQ(log.size(), 7u);
}

namespace {
AsyncGenerator<int> fails_after_one() {
    co_yield 1;
    co_await sleep(10ms);
    throw ZeroDivisionError();
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_02 (an exception in the body
// propagates from __anext__; afterwards the generator is finished)
CORIO_TEST(AsyncGenerator, ExceptionFromBodyPropagatesFromNext) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    auto g = fails_after_one();
    auto first = co_await g.next();
    EXPECT_EQ(first, std::optional<int>(1));
    std::string error;
    try {
        (void)co_await g.next();
    } catch (const ZeroDivisionError& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "ZeroDivisionError");
    EXPECT_EQ(ms_since(t0), 10.0);
    EXPECT_TRUE(g.done());
    auto after = co_await g.next();
    EXPECT_FALSE(after.has_value());
    co_await g.aclose();
}

namespace {
AsyncGenerator<std::unique_ptr<int>> boxes(int n) {
    for (int i = 0; i < n; ++i) {
        auto box = std::make_unique<int>(i * 10);
        co_yield std::move(box);
    }
    co_yield std::make_unique<int>(-1);
}
}  // namespace

// Move-only values travel through co_yield and next() without copies.
CORIO_TEST(AsyncGenerator, MoveOnlyValues) {
    auto g = boxes(3);
    std::vector<int> got;
    while (std::optional<std::unique_ptr<int>> box = co_await g.next()) {
        CO_ASSERT_TRUE(*box != nullptr);
        std::unique_ptr<int> mine = std::move(*box);
        got.push_back(*mine);
    }
    EXPECT_EQ(got, (std::vector<int>{0, 10, 20, -1}));
}

// ---------------------------------------------------------------------------------------------
// AG1: aclose()
// ---------------------------------------------------------------------------------------------

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_aclose_07: GeneratorExit is
// thrown at the co_yield (the code after it does not run) and the cleanup may await.
CORIO_TEST(AsyncGenerator, AcloseThrowsGeneratorExitAtTheYield) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto g = counter(5, &log, 0s, 1s);
    auto first = co_await g.next();
    EXPECT_EQ(first, std::optional<int>(0));
    log.push_back("aclose");
    co_await g.aclose();
    log.push_back("aclosed");
    EXPECT_EQ(log, (Log{"yield 0", "aclose", "GeneratorExit", "cleanup done", "aclosed"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_TRUE(g.done());
    auto after = co_await g.next();
    EXPECT_FALSE(after.has_value());
}

namespace {
// A generator whose cleanup finishes normally instead of re-raising GeneratorExit.
AsyncGenerator<int> finishes_on_exit(Log* log) {
    try {
        co_yield 1;
        co_yield 2;
    } catch (const GeneratorExit&) {
        log->push_back("GeneratorExit");
    }
    co_await sleep(0s);
    log->push_back("returned");
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_aclose_10 (a generator that
// returns after GeneratorExit closes cleanly), test_async_gen_aclose_after_exhaustion: aclose()
// on a closed or exhausted generator is a no-op and may be repeated.
namespace {
AsyncGenerator<int> ticking(Log* log) {
    bool closing = false;
    try {
        for (int i = 0;; ++i) {
            auto tick = sleep(20ms);
            co_await tick;
            co_yield i;
        }
    } catch (const GeneratorExit&) {
        closing = true;
    }
    log->push_back("closed");
    if (closing) throw GeneratorExit{};
}

Coro<> owns_then_drops(AsyncGenerator<int>** out, Log* log) {
    AsyncGenerator<int> g = ticking(log);
    *out = &g;
    auto first = g.next();
    co_await first;  // 20 ms
    auto rest = sleep(25ms);
    co_await rest;  // 45 ms: g is dropped while another task is inside it
}

Coro<std::optional<int>> one_step(AsyncGenerator<int>* g) {
    auto taking = g->next();
    std::optional<int> v = co_await taking;
    co_return v;
}
}  // namespace

// A generator whose owner drops it while another task's next() is suspended inside it is not
// freed under that task (ASan: its sleep's timer node was freed while in the loop's heap): the
// step ends with its value, then the loop closes the generator, as Python's anext keeps it alive.
CORIO_TEST(AsyncGenerator, DroppedWhileAnotherTaskIsInsideItLivesUntilThatStepEnds) {
    corio::testing::MockClock clock;
    Log log;
    AsyncGenerator<int>* g = nullptr;
    Task<> owner = create_task(owns_then_drops(&g, &log));
    co_await sleep(30ms);
    Task<std::optional<int>> step = create_task(one_step(g));  // enters at 30 ms, inside until 50 ms
    co_await owner;
    std::optional<int> v = co_await step;
    EXPECT_EQ(v, std::optional<int>(1));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);  // the closer runs
    EXPECT_EQ(log, (Log{"closed"}));
}

CORIO_TEST(AsyncGenerator, AcloseIsANoOpOnceClosedOrExhausted) {
    corio::testing::MockClock clock;
    Log log;
    auto g = finishes_on_exit(&log);
    (void)co_await g.next();
    co_await g.aclose();
    co_await g.aclose();
    co_await g.aclose();
    EXPECT_EQ(log, (Log{"GeneratorExit", "returned"}));

    Log log2;
    auto e = counter(2, &log2);
    std::vector<int> got = co_await drain(&e);
    EXPECT_EQ(got, (std::vector<int>{0, 1}));
    co_await e.aclose();
    co_await e.aclose();
    EXPECT_EQ(log2, (Log{"yield 0", "resumed 0", "yield 1", "resumed 1", "finished"}));
}

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_aclose_twice_with_different_coros
// (bpo-39606): aclose() on a generator never started runs none of its body, may be repeated,
// and leaves it finished (a closed Python generator raises StopAsyncIteration on __anext__()).
CORIO_TEST(AsyncGenerator, AcloseOnNeverStartedGeneratorRunsNothingAndFinishesIt) {
    corio::testing::MockClock clock;
    Log log;
    auto g = counter(3, &log);
    co_await g.aclose();
    co_await g.aclose();
    EXPECT_TRUE(log.empty());
    auto v = co_await g.next();
    EXPECT_FALSE(v.has_value());
    EXPECT_TRUE(log.empty()) << "the body of a closed generator must never run";
    EXPECT_TRUE(g.done());
}

// Python: athrow() on an async generator that never started raises the exception at once and
// finishes the generator; its body never runs (gen_send_ex on a just-created frame).
CORIO_TEST(AsyncGenerator, AthrowOnNeverStartedGeneratorThrowsItBackAndFinishesIt) {
    corio::testing::MockClock clock;
    Log log;
    auto g = counter(3, &log);
    bool thrown_back = false;
    try {
        auto v = co_await g.athrow(std::make_exception_ptr(std::runtime_error("boom")));
        ADD_FAILURE() << "athrow returned " << (v ? *v : -1);
    } catch (const std::runtime_error& e) {
        thrown_back = std::string(e.what()) == "boom";
    }
    EXPECT_TRUE(thrown_back);
    EXPECT_TRUE(g.done());
    auto v = co_await g.next();
    EXPECT_FALSE(v.has_value());
    EXPECT_TRUE(log.empty()) << "the body of a generator thrown into before it started must never run";
}

namespace {
// Yields once more after GeneratorExit (asyncgen: "async generator ignored GeneratorExit"),
// and gives up at the second one.
AsyncGenerator<int> ignores_exit(Log* log) {
    bool ignored = false;
    try {
        co_yield 1;
    } catch (const GeneratorExit&) {
        log->push_back("GeneratorExit 1");
        ignored = true;
    }
    if (ignored) {
        try {
            co_yield 2;
        } catch (const GeneratorExit&) {
            log->push_back("GeneratorExit 2");
            throw;
        }
    }
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_aclose_06, _11 ("ignored GeneratorExit")
CORIO_TEST(AsyncGenerator, YieldingAfterGeneratorExitThrowsLogicError) {
    Log log;
    auto g = ignores_exit(&log);
    (void)co_await g.next();
    std::string error;
    try {
        co_await g.aclose();
    } catch (const std::logic_error& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "async generator ignored GeneratorExit");
    EXPECT_EQ(log, (Log{"GeneratorExit 1"}));
    co_await g.aclose();  // this time it gives up
    EXPECT_EQ(log, (Log{"GeneratorExit 1", "GeneratorExit 2"}));
    EXPECT_TRUE(g.done());
}

namespace {
AsyncGenerator<int> raises_on_exit() {
    try {
        co_yield 1;
    } catch (const GeneratorExit&) {
        throw ZeroDivisionError();
    }
}
}  // namespace

// AG1 (asyncgen aclose()): an exception other than GeneratorExit raised by the cleanup
// propagates from aclose(), and the generator is finished.
CORIO_TEST(AsyncGenerator, ExceptionRaisedOnGeneratorExitPropagatesFromAclose) {
    auto g = raises_on_exit();
    (void)co_await g.next();
    std::string error;
    try {
        co_await g.aclose();
    } catch (const ZeroDivisionError& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "ZeroDivisionError");
    EXPECT_TRUE(g.done());
    co_await g.aclose();
}

// ---------------------------------------------------------------------------------------------
// AG3: no concurrency on one generator
// ---------------------------------------------------------------------------------------------

namespace {
Coro<int> next_of(AsyncGenerator<int>* g) {
    auto v = co_await g->next();
    co_return v.value_or(-1);
}
}  // namespace

// test_asyncgen.py::TestUnawaitedWarnings::test_asend_send_already_running,
// AsyncGenTest::test_async_gen_asend_throw_concurrent_with_send
CORIO_TEST(AsyncGenerator, ConcurrentNextFromTwoTasksThrowsLogicError) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto g = counter(3, &log, 1s);
    Task<int> a = create_task(next_of(&g));
    co_await sleep(0s);  // a is now inside next(), the body sleeping
    std::string error;
    try {
        (void)co_await g.next();
    } catch (const std::logic_error& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "anext(): asynchronous generator is already running");
    std::string close_error;
    try {
        co_await g.aclose();
    } catch (const std::logic_error& e) {
        close_error = e.what();
    }
    EXPECT_EQ(close_error, "aclose(): asynchronous generator is already running");
    int v = co_await a;
    EXPECT_EQ(v, 0);
    EXPECT_EQ(ms_since(t0), 1000.0);
    // The refused calls left it intact: it goes on from where it was.
    auto next = co_await g.next();
    EXPECT_EQ(next, std::optional<int>(1));
    co_await g.aclose();
    EXPECT_EQ(log, (Log{"yield 0", "resumed 0", "yield 1", "GeneratorExit", "cleanup done"}));
}

namespace {
struct Boom {};
}  // namespace

// AG3: an athrow() refused because the generator is running throws nothing into it later (the
// exception was put in place at the call, and hit the other task's next() at the co_yield).
CORIO_TEST(AsyncGenerator, AthrowRefusedWhileRunningLeavesTheGeneratorAlone) {
    corio::testing::MockClock clock;
    Log log;
    auto g = counter(3, &log, 1s);
    Task<int> a = create_task(next_of(&g));
    co_await sleep(0s);  // a is inside next(), the body sleeping
    std::string error;
    try {
        auto throwing = g.athrow(std::make_exception_ptr(Boom{}));
        (void)co_await throwing;
    } catch (const std::logic_error& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "athrow(): asynchronous generator is already running");
    int first = co_await a;
    EXPECT_EQ(first, 0);
    auto second = co_await g.next();
    EXPECT_EQ(second, std::optional<int>(1));
    co_await g.aclose();
}

// AG3 / test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asend_... "cannot reuse already
// awaited": a next() awaiter awaited twice is refused (it took a second step silently).
CORIO_TEST(AsyncGenerator, ANextAwaiterAwaitedTwiceIsRefused) {
    corio::testing::MockClock clock;
    Log log;
    auto g = counter(3, &log);
    auto step = g.next();
    auto first = co_await step;
    EXPECT_EQ(first, std::optional<int>(0));
    bool refused = false;
    try {
        (void)co_await step;
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    auto second = co_await g.next();
    EXPECT_EQ(second, std::optional<int>(1));  // the refused await took no step
    co_await g.aclose();
}

// An athrow() never awaited does nothing, as a Python awaitable that is never awaited.
CORIO_TEST(AsyncGenerator, AthrowNeverAwaitedThrowsNothing) {
    corio::testing::MockClock clock;
    Log log;
    auto g = counter(3, &log);
    {
        auto unused = g.athrow(std::make_exception_ptr(Boom{}));
    }
    EXPECT_FALSE(g.done());  // not even a fresh generator is finished by it
    auto first = co_await g.next();
    EXPECT_EQ(first, std::optional<int>(0));
    {
        auto unused = g.athrow(std::make_exception_ptr(Boom{}));
    }
    auto second = co_await g.next();
    EXPECT_EQ(second, std::optional<int>(1));
    co_await g.aclose();
}
