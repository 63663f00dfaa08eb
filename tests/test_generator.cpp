// AsyncGenerator: asyncio's async generator rules (asyncio-rules.md 1.AG, and R3's shutdown
// order), ported from CPython's Lib/test/test_asyncgen.py and test_asyncio/test_runners.py.
// Coroutine tests use virtual time (MockClock); the shutdown tests build their own Runner.
#include <corio/testing.hpp>

#include "core_support.hpp"

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

using Log = std::vector<std::string>;

struct ZeroDivisionError : std::runtime_error {
    ZeroDivisionError() : std::runtime_error("ZeroDivisionError") {}
};
struct FancyExit : std::runtime_error {
    FancyExit() : std::runtime_error("FancyExit") {}
};

std::string str(const char* prefix, int i) {
    std::string s = prefix;
    s += std::to_string(i);
    return s;
}

// Yields 0..n-1, each after `step`; on GeneratorExit spends `cleanup` awaiting, then finishes.
AsyncGenerator<int> counter(int n, Log* log, Clock::duration step = 0s, Clock::duration cleanup = 0s) {
    bool closing = false;
    try {
        for (int i = 0; i < n; ++i) {
            if (step > 0s) co_await sleep(step);
            log->push_back(str("yield ", i));
            co_yield i;
            log->push_back(str("resumed ", i));
        }
    } catch (const GeneratorExit&) {
        log->push_back("GeneratorExit");
        closing = true;
    }
    if (closing) {
        co_await sleep(cleanup);  // cleanup may await
        log->push_back("cleanup done");
        throw GeneratorExit{};
    }
    log->push_back("finished");
}

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

// ---------------------------------------------------------------------------------------------
// Cancellation while the body awaits inside next()
// ---------------------------------------------------------------------------------------------

namespace {
AsyncGenerator<int> slow_values(Log* log) {
    co_yield 1;
    try {
        co_await sleep(10s);
    } catch (const CancelledError& e) {
        log->push_back(std::string("generator saw CancelledError:") + e.what());
        throw;
    }
    co_yield 2;
}
Coro<> consume(AsyncGenerator<int>* g, Log* log) {
    while (auto v = co_await g->next()) log->push_back(str("got ", *v));
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_asend_03 (a CancelledError
// inside the body escapes asend(), its cleanup ran): cancelling the consuming task delivers
// CancelledError inside the generator body; it escapes next(); the generator is finished.
CORIO_TEST(AsyncGenerator, CancelWhileBodyAwaitsInsideNext) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto g = slow_values(&log);
    Task<> t = create_task(consume(&g, &log));
    co_await sleep(1s);
    t.cancel("stop");
    std::string how;
    try {
        co_await t;
        how = "ok";
    } catch (const CancelledError& e) {
        how = std::string("CancelledError:") + e.what();
    }
    EXPECT_EQ(how, "CancelledError:stop");
    EXPECT_EQ(log, (Log{"got 1", "generator saw CancelledError:stop"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_TRUE(g.done());
    auto after = co_await g.next();
    EXPECT_FALSE(after.has_value());
    co_await g.aclose();
}

namespace {
AsyncGenerator<int> swallows_cancel(Log* log) {
    bool cancelled = false;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        log->push_back("swallowed");
        co_yield -1;
    }
    co_yield 2;
}
Coro<> consume_two(AsyncGenerator<int>* g, Log* log) {
    auto a = co_await g->next();
    log->push_back(str("got ", a.value_or(0)));
    auto b = co_await g->next();
    log->push_back(str("got ", b.value_or(0)));
}
}  // namespace

// Edge-triggered cancellation: a generator that swallows the cancel and yields hands the
// value to the consumer, whose task goes on and is not cancelled (T5 through a generator).
CORIO_TEST(AsyncGenerator, GeneratorSwallowingTheCancelYieldsToTheConsumer) {
    corio::testing::MockClock clock;
    Log log;
    auto g = swallows_cancel(&log);
    Task<> t = create_task(consume_two(&g, &log));
    co_await sleep(1s);
    t.cancel();
    co_await t;
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(log, (Log{"swallowed", "got -1", "got 2"}));
    co_await g.aclose();
}

// ---------------------------------------------------------------------------------------------
// AG4: a generator dropped mid-iteration is closed by the loop
// ---------------------------------------------------------------------------------------------

namespace {
AsyncGenerator<int> forever(int* done, Log* log) {
    bool closing = false;
    try {
        for (;;) co_yield 1;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    if (closing) {
        log->push_back("finally");
        co_await sleep(0s);
        *done = 1;
        log->push_back("done");
        throw GeneratorExit{};
    }
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_gc_aclose_09
CORIO_TEST(AsyncGenerator, DroppedMidIterationIsClosedByTheLoop) {
    int done = 0;
    Log log;
    {
        auto g = forever(&done, &log);
        (void)co_await g.next();
        (void)co_await g.next();
    }  // `del g`
    log.push_back("dropped");
    co_await sleep(0s);  // starts running the aclose task
    log.push_back(str("after 1st sleep(0): done=", done));
    co_await sleep(0s);  // for the sleep(0) in its cleanup
    log.push_back(str("after 2nd sleep(0): done=", done));
    EXPECT_EQ(done, 1);
    EXPECT_EQ(log, (Log{"dropped", "finally", "after 1st sleep(0): done=0", "done", "after 2nd sleep(0): done=1"}));
}

// A never-started generator that is dropped has nothing to clean up: no task is started.
CORIO_TEST(AsyncGenerator, DroppedBeforeStartingNeedsNoClosing) {
    int done = 0;
    Log log;
    { auto g = forever(&done, &log); }
    EXPECT_EQ(all_tasks().size(), 1u);  // only this test's own task
    co_await sleep(0s);
    EXPECT_TRUE(log.empty());
}

// ---------------------------------------------------------------------------------------------
// Loop shutdown (R3, AG5): plain tests with their own Runner
// ---------------------------------------------------------------------------------------------

namespace {
// Captures what reaches the loop's exception handler.
struct Reports {
    std::vector<std::string> messages;
    std::vector<std::string> errors;
    void install(EventLoop& loop) {
        loop.set_exception_handler([this](EventLoop&, const ExceptionContext& c) {
            messages.push_back(c.message);
            std::string what = "none";
            if (c.exception) {
                try {
                    std::rethrow_exception(c.exception);
                } catch (const std::exception& e) {
                    what = e.what();
                } catch (...) {
                    what = "other";
                }
            }
            errors.push_back(what);
        });
    }
};
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_shutdown_01: a generator left
// suspended at a co_yield is closed (its cleanup runs) by the Runner's shutdown.
TEST(AsyncGeneratorShutdown, RunnerCloseClosesGeneratorsStillAlive) {
    Log log;
    AsyncGenerator<int> kept;  // outlives the coroutine, and the loop
    Reports reports;
    {
        Runner runner;
        reports.install(runner.get_loop());
        auto main = [&]() -> Coro<int> {
            kept = counter(5, &log);
            auto v = co_await kept.next();
            co_return v.value_or(-1);
        };
        EXPECT_EQ(runner.run(main()), 0);
        EXPECT_EQ(log, (Log{"yield 0"}));
        runner.close();
        EXPECT_EQ(log, (Log{"yield 0", "GeneratorExit", "cleanup done"}));
    }
    EXPECT_TRUE(kept.done());
    EXPECT_TRUE(reports.messages.empty());
}

// The same through corio::run (asyncio.run): shutdown_asyncgens is part of it.
TEST(AsyncGeneratorShutdown, RunClosesGeneratorsStillAlive) {
    Log log;
    AsyncGenerator<int> kept;
    auto main = [&]() -> Coro<int> {
        kept = counter(5, &log);
        auto v = co_await kept.next();
        auto w = co_await kept.next();
        co_return v.value_or(-1) + w.value_or(-1);
    };
    EXPECT_EQ(corio::run(main()), 1);
    EXPECT_EQ(log, (Log{"yield 0", "resumed 0", "yield 1", "GeneratorExit", "cleanup done"}));
    EXPECT_TRUE(kept.done());
}

namespace {
Coro<> hang(Log* log) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
        log->push_back("task cancelled");
        throw;
    }
}
}  // namespace

// R3: the Runner cancels the leftover tasks first, then closes the generators.
TEST(AsyncGeneratorShutdown, TasksAreCancelledBeforeGeneratorsAreClosed) {
    Log log;
    AsyncGenerator<int> kept;
    {
        Runner runner;
        auto main = [&]() -> Coro<> {
            kept = counter(5, &log);
            (void)co_await kept.next();
            (void)create_task(hang(&log));
            co_await sleep(0s);  // let it start
        };
        runner.run(main());
        runner.close();
    }
    EXPECT_EQ(log, (Log{"yield 0", "task cancelled", "GeneratorExit", "cleanup done"}));
}

namespace {
AsyncGenerator<int> fidget() {
    for (;;) {
        co_yield 1;
        co_await sleep(1s);
    }
}
Coro<> spin(AsyncGenerator<int>* spinner) {
    *spinner = fidget();
    bool cancelled = false;
    try {
        while (auto v = co_await spinner->next()) (void)v;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) throw ZeroDivisionError();
}
}  // namespace

// test_runners.py::RunTests::test_asyncio_run_closes_gens_after_hanging_tasks_errors: the
// hanging task is cancelled while its generator is running (inside next()); the generator is
// not closed first (it would be "already running"), the task's error is reported as an
// unhandled exception during shutdown, and nothing is reported about the generator.
TEST(AsyncGeneratorShutdown, RunClosesGeneratorsAfterHangingTasksErrors) {
    AsyncGenerator<int> spinner;
    Task<> lazyboy;
    Reports reports;
    auto main = [&]() -> Coro<> {
        reports.install(get_running_loop());
        lazyboy = create_task(spin(&spinner));
        co_await sleep(0s);  // lazyboy's first step: it is now inside spinner.next()
        throw FancyExit();
    };
    EXPECT_THROW(corio::run(main()), FancyExit);
    EXPECT_TRUE(lazyboy.done());
    EXPECT_TRUE(spinner.done());
    std::string error = "none";
    try {
        std::rethrow_exception(lazyboy.exception());
    } catch (const std::exception& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "ZeroDivisionError");
    EXPECT_EQ(reports.messages, (std::vector<std::string>{"unhandled exception during corio::run() shutdown"}));
    EXPECT_EQ(reports.errors, (std::vector<std::string>{"ZeroDivisionError"}));
}

namespace {
// `token` is a parameter: its copy lives in the generator's frame until the frame is destroyed.
AsyncGenerator<int> holds_token(Log* log, std::shared_ptr<int> token) {
    (void)token;
    try {
        co_yield 1;
        co_yield 2;
    } catch (const GeneratorExit&) {
        log->push_back("generator closed");
        throw;
    }
}
// Holds a generator in its own frame, suspended at a co_yield, and hangs.
Coro<> owns_a_generator(Log* log, std::shared_ptr<int> frame_token) {
    auto g = holds_token(log, std::move(frame_token));
    (void)co_await g.next();
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
        log->push_back("task cancelled");
        throw;
    }
}
}  // namespace

// R3 with the generator owned by a hanging task: cancelling the task drops the generator while
// the Runner shuts down; its cleanup runs exactly once and its frame is freed.
TEST(AsyncGeneratorShutdown, GeneratorDroppedByACancelledTaskAtShutdownIsClosedAndFreed) {
    Log log;
    auto token = std::make_shared<int>(0);
    {
        Runner runner;
        auto main = [&]() -> Coro<> {
            (void)create_task(owns_a_generator(&log, token));
            co_await sleep(0s);
            co_await sleep(0s);
        };
        runner.run(main());
        runner.close();
    }
    EXPECT_EQ(log, (Log{"task cancelled", "generator closed"}));
    EXPECT_EQ(token.use_count(), 1) << "the generator's frame (holding a copy of the token) was never destroyed";
}
