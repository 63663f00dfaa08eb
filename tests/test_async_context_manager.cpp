// async_with over an AsyncGenerator: contextlib's @asynccontextmanager (asyncio-rules.md CM1),
// ported from CPython's Lib/test/test_contextlib_async.py::AsyncContextManagerTestCase. The
// generator runs to its single co_yield, the body runs, then the generator finishes; an
// exception from the body is thrown in at the co_yield.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <exception>
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
struct SyntaxError : std::runtime_error {
    SyntaxError() : std::runtime_error("SyntaxError") {}
};

// What an await ended with: "ok", "CancelledError", a logic_error's or another exception's text.
template <class A>
Coro<std::string> outcome(A aw) {
    std::string out = "ok";
    try {
        co_await std::move(aw);
    } catch (const CancelledError&) {
        out = "CancelledError";
    } catch (const std::logic_error& e) {
        out = std::string("logic_error: ") + e.what();
    } catch (const std::exception& e) {
        out = e.what();
    }
    co_return out;
}

std::string name_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return "CancelledError";
    } catch (const std::exception& x) {
        return x.what();
    }
}

// How a generator reacts to what the body threw into it at its co_yield.
enum class OnError { Reraise, Swallow, RaiseOther, YieldAgain };

// `@asynccontextmanager async def woohoo(): log enter; try: yield 42 except: <on_error>
// finally: log exit`, with a sleep on each side so that both ends may await.
AsyncGenerator<int> woohoo(Log* log, OnError on_error) {
    co_await sleep(1s);
    log->push_back("enter");
    bool thrown_in = false;
    try {
        co_yield 42;
    } catch (...) {
        thrown_in = true;
        log->push_back("caught " + name_of(std::current_exception()));
        if (on_error == OnError::Reraise) {
            log->push_back("exit");
            throw;
        }
        if (on_error == OnError::RaiseOther) {
            log->push_back("exit");
            throw SyntaxError();
        }
    }
    if (thrown_in && on_error == OnError::YieldAgain) {
        try {
            co_yield 43;
        } catch (const GeneratorExit&) {
            log->push_back("closed");
            throw;
        }
    }
    co_await sleep(1s);  // the cleanup may await
    log->push_back("exit");
}

// `@asynccontextmanager` that yields twice on a normal exit, with cleanup in its finally.
AsyncGenerator<int> yields_twice(Log* log) {
    bool closing = false;
    try {
        co_yield 1;
        co_yield 2;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    co_await sleep(1s);  // the cleanup may await
    log->push_back(closing ? "cleanup" : "finished");
}

AsyncGenerator<int> never_yields(Log* log) {
    co_await sleep(1s);
    log->push_back("returned");
    co_return;
}

Coro<> body_logs(Log* log, int* seen, int value) {
    *seen = value;
    log->push_back("body");
    co_await sleep(1s);
}

Coro<> body_throws(Log* log) {
    co_await sleep(1s);
    log->push_back("body");
    throw ZeroDivisionError();
}

Coro<> body_sleeps_an_hour(Log* log) {
    log->push_back("body");
    co_await sleep(1h);
}

}  // namespace

// test_contextmanager_plain: enter, body with the yielded value, exit.
CORIO_TEST(AsyncContextManager, RunsTheGeneratorAroundTheBody) {
    corio::testing::MockClock clock;
    Log log;
    int seen = 0;
    auto body = [&](int& v) { return body_logs(&log, &seen, v); };
    std::string r = co_await outcome(async_with(woohoo(&log, OnError::Reraise), body));
    EXPECT_EQ(r, "ok");
    EXPECT_EQ(seen, 42);
    EXPECT_EQ(log, (Log{"enter", "body", "exit"}));
}

// test_contextmanager_finally / test_contextmanager_except: the body's exception is thrown in at
// the co_yield; a generator that re-raises it lets it propagate after its cleanup.
CORIO_TEST(AsyncContextManager, BodyErrorThrownInAndReraisedPropagates) {
    corio::testing::MockClock clock;
    Log log;
    auto body = [&](int&) { return body_throws(&log); };
    std::string r = co_await outcome(async_with(woohoo(&log, OnError::Reraise), body));
    EXPECT_EQ(r, "ZeroDivisionError");
    EXPECT_EQ(log, (Log{"enter", "body", "caught ZeroDivisionError", "exit"}));
}

// test_contextmanager_no_reraise: a generator that finishes normally suppresses the exception.
CORIO_TEST(AsyncContextManager, GeneratorThatFinishesSuppressesTheBodysError) {
    corio::testing::MockClock clock;
    Log log;
    auto body = [&](int&) { return body_throws(&log); };
    std::string r = co_await outcome(async_with(woohoo(&log, OnError::Swallow), body));
    EXPECT_EQ(r, "ok");
    EXPECT_EQ(log, (Log{"enter", "body", "caught ZeroDivisionError", "exit"}));
}

// CM1: a different exception raised by the generator is the one that propagates.
CORIO_TEST(AsyncContextManager, DifferentErrorFromTheGeneratorReplacesTheBodys) {
    corio::testing::MockClock clock;
    Log log;
    auto body = [&](int&) { return body_throws(&log); };
    std::string r = co_await outcome(async_with(woohoo(&log, OnError::RaiseOther), body));
    EXPECT_EQ(r, "SyntaxError");
    EXPECT_EQ(log, (Log{"enter", "body", "caught ZeroDivisionError", "exit"}));
}

// A cancellation of the body is thrown in like any exception: the generator's cleanup runs, and
// the CancelledError propagates (re-raised) or is suppressed (the generator finishes: contextlib
// does not tell them apart).
CORIO_TEST(AsyncContextManager, CancellationIsThrownInAtTheYield) {
    corio::testing::MockClock clock;
    for (OnError on_error : {OnError::Reraise, OnError::Swallow}) {
        Log log;
        auto body = [&](int&) { return body_sleeps_an_hour(&log); };
        Task<std::string> t = create_task(outcome(async_with(woohoo(&log, on_error), body)));
        co_await sleep(2s);
        t.cancel();
        std::string r = co_await t;
        EXPECT_EQ(r, on_error == OnError::Reraise ? "CancelledError" : "ok");
        EXPECT_EQ(log, (Log{"enter", "body", "caught CancelledError", "exit"}));
    }
}

// test_contextmanager_trap_no_yield.
CORIO_TEST(AsyncContextManager, GeneratorThatDoesNotYieldIsAnError) {
    corio::testing::MockClock clock;
    Log log;
    int seen = 0;
    auto body = [&](int& v) { return body_logs(&log, &seen, v); };
    std::string r = co_await outcome(async_with(never_yields(&log), body));
    EXPECT_EQ(r, "logic_error: generator didn't yield");
    EXPECT_EQ(log, (Log{"returned"}));
}

// test_contextmanager_trap_second_yield: a second co_yield on a normal exit is an error, and the
// generator is closed first (contextlib's `raise RuntimeError(...)` in a try whose finally awaits
// `gen.aclose()`), so its cleanup has run when the error reaches the caller.
CORIO_TEST(AsyncContextManager, SecondYieldIsAnErrorAfterTheGeneratorIsClosed) {
    corio::testing::MockClock clock;
    Log log;
    int seen = 0;
    auto body = [&](int& v) { return body_logs(&log, &seen, v); };
    std::string r = co_await outcome(async_with(yields_twice(&log), body));
    log.push_back(r);
    EXPECT_EQ(log, (Log{"body", "cleanup", "logic_error: generator didn't stop"}));
}

// test_contextmanager_trap_yield_after_throw: the same after an exception was thrown in.
CORIO_TEST(AsyncContextManager, YieldAfterThrowIsAnErrorAfterTheGeneratorIsClosed) {
    corio::testing::MockClock clock;
    Log log;
    auto body = [&](int&) { return body_throws(&log); };
    std::string r = co_await outcome(async_with(woohoo(&log, OnError::YieldAgain), body));
    log.push_back(r);
    EXPECT_EQ(log, (Log{"enter", "body", "caught ZeroDivisionError", "closed",
                    "logic_error: generator didn't stop after athrow()"}));
}
