// AsyncGenerator, how a generator's life ends (asyncio-rules.md 1.AG, and R3's shutdown order):
// a cancel while the body awaits inside next(), a generator dropped mid-iteration closed by the
// loop (AG4), and the loop's shutdown closing the generators still alive, after cancelling the
// tasks (R3, AG5). Ported from CPython's Lib/test/test_asyncgen.py and
// test_asyncio/test_runners.py. Iteration, aclose()/athrow() and AG3 are in test_generator.cpp.
// Coroutine tests use virtual time (MockClock); the shutdown tests build their own Runner.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "generator_support.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

struct FancyExit : std::runtime_error {
    FancyExit() : std::runtime_error("FancyExit") {}
};

}  // namespace

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
