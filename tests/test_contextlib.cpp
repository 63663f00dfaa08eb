// async_with and AsyncExitStack: `async with` and contextlib.AsyncExitStack (asyncio-rules.md
// 1.CM), ported from CPython's Lib/test/test_contextlib_async.py. Virtual time (MockClock).
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

using Log = std::vector<std::string>;

struct ValueError : std::runtime_error {
    explicit ValueError(const std::string& what = "ValueError") : std::runtime_error(what) {}
};
struct CloseError : std::runtime_error {
    explicit CloseError(const std::string& what) : std::runtime_error(what) {}
};

std::string shape(const std::exception_ptr& e) {
    if (!e) return "none";
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return std::string("CancelledError:") + c.what();
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown";
    }
}

template <class A>
Coro<std::string> outcome(A aw) {
    std::string out = "ok";
    try {
        co_await std::move(aw);
    } catch (...) {
        out = shape(std::current_exception());
    }
    co_return out;
}

// An async resource: `aclose()` may await (`close_delay`) and may fail.
struct Resource {
    std::string name;
    Log* log = nullptr;
    Clock::time_point t0{};
    Clock::duration close_delay{};
    bool fail_close = false;

    Coro<> aclose() {
        if (close_delay > Clock::duration::zero()) co_await sleep(close_delay);
        log->push_back(tag("close " + name, t0));
        if (fail_close) throw CloseError("close " + name + " failed");
    }
};

Coro<Resource> open_resource(std::string name, Log* log, Clock::time_point t0, Clock::duration close_delay = {},
                             bool fail_close = false) {
    co_await sleep(0s);
    log->push_back(tag("open " + name, t0));
    co_return Resource{name, log, t0, close_delay, fail_close};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// async_with
// ---------------------------------------------------------------------------------------------

// test_contextlib_async.py::AclosingTestCase::test_aclosing: enter, body, close; the body's
// value passes through.
CORIO_TEST(AsyncWith, ClosesOnNormalExitAndReturnsTheBodysValue) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    int v = co_await async_with(open_resource("a", &log, t0, 1s), [&](Resource& r) -> Coro<int> {
        log.push_back(tag("body " + r.name, t0));
        co_await sleep(2s);
        co_return 42;
    });
    EXPECT_EQ(v, 42);
    EXPECT_EQ(log, (Log{"open a@0", "body a@0", "close a@3000"}));
    EXPECT_EQ(ms_since(t0), 3000.0);
}

// A move-only value passes through as well.
CORIO_TEST(AsyncWith, MoveOnlyBodyValuePassesThrough) {
    corio::testing::MockClock clock;  // virtual time: the logged times are exact
    Log log;
    auto t0 = get_running_loop().time();
    std::unique_ptr<int> p = co_await async_with(open_resource("a", &log, t0), [&](Resource&) -> Coro<std::unique_ptr<int>> {
        co_return std::make_unique<int>(7);
    });
    CO_ASSERT_TRUE(p != nullptr);
    EXPECT_EQ(*p, 7);
    EXPECT_EQ(log, (Log{"open a@0", "close a@0"}));
}

// test_contextlib_async.py::AclosingTestCase::test_aclosing_error: closed on an exception,
// which is rethrown after aclose().
CORIO_TEST(AsyncWith, ClosesOnExceptionThenRethrows) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    std::string result = co_await outcome(async_with(open_resource("a", &log, t0, 1s), [&](Resource&) -> Coro<> {
        co_await sleep(1s);
        log.push_back(tag("raise", t0));
        throw ValueError();
    }));
    EXPECT_EQ(result, "ValueError");
    EXPECT_EQ(log, (Log{"open a@0", "raise@1000", "close a@2000"}));
}

namespace {
Coro<> cancelled_inside_with(Log* log, Clock::time_point t0) {
    co_await async_with(open_resource("a", log, t0, 1s), [&](Resource&) -> Coro<> {
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            log->push_back(tag("body cancelled", t0));
            throw;
        }
    });
    log->push_back("after with");
}
}  // namespace

// `async with` on cancellation: aclose() still runs, and may await (cancellation is
// edge-triggered); the CancelledError then propagates unchanged.
CORIO_TEST(AsyncWith, ClosesOnCancellationAndCloseMayAwait) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(cancelled_inside_with(&log, t0));
    co_await sleep(1s);
    t.cancel("stop");
    std::string result = co_await outcome(t);
    EXPECT_EQ(result, "CancelledError:stop");
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (Log{"open a@0", "body cancelled@1000", "close a@2000"}));
    EXPECT_EQ(ms_since(t0), 2000.0);
}

// `async with` semantics (PEP 492): an exception raised by __aexit__ (here aclose()) replaces
// the body's, and one raised on a normal exit propagates.
CORIO_TEST(AsyncWith, AcloseExceptionReplacesTheBodys) {
    corio::testing::MockClock clock;  // virtual time: the logged times are exact
    auto t0 = get_running_loop().time();
    Log log;
    std::string r1 = co_await outcome(async_with(open_resource("a", &log, t0, {}, true), [&](Resource&) -> Coro<> {
        throw ValueError();
        co_return;
    }));
    EXPECT_EQ(r1, "close a failed");
    std::string r2 = co_await outcome(async_with(open_resource("b", &log, t0, {}, true), [&](Resource&) -> Coro<int> {
        co_return 1;
    }));
    EXPECT_EQ(r2, "close b failed");
    EXPECT_EQ(log, (Log{"open a@0", "close a@0", "open b@0", "close b@0"}));
}

// An acquire that fails never reaches the body, and there is nothing to close.
CORIO_TEST(AsyncWith, FailedAcquireRunsNoBody) {
    corio::testing::MockClock clock;  // virtual time: the logged times are exact
    Log log;
    auto failing_open = []() -> Coro<Resource> {
        throw ValueError("open failed");
        co_return Resource{};
    };
    std::string r = co_await outcome(async_with(failing_open(), [&](Resource&) -> Coro<> {
        log.push_back("body");
        co_return;
    }));
    EXPECT_EQ(r, "open failed");
    EXPECT_TRUE(log.empty());
}

namespace {
// The body of `async with <resource value> as r`: renames r, so the close shows it is the same object.
struct RenameBody {
    Log* log;
    Coro<int> operator()(Resource& r) const {
        log->push_back("body " + r.name);
        r.name = "renamed";
        co_await sleep(1s);
        co_return 5;
    }
};

// Whether async_with accepts `R` as a plain resource value (not a Coro that acquires one).
template <class R, class F>
concept AsyncWithAcceptsValue = requires(R r, F f) { corio::async_with(std::move(r), std::move(f)); };

template <class R>
Coro<bool> resource_value_scenario(Log* log, Clock::time_point t0) {
    if constexpr (AsyncWithAcceptsValue<R, RenameBody>) {
        R res{"v", log, t0, 1s, false};
        int v = co_await async_with(std::move(res), RenameBody{log});
        std::string line = "result ";
        line += std::to_string(v);
        log->push_back(line);
        co_return true;
    } else {
        co_return false;
    }
}
}  // namespace

// `async with r:` for a resource that is already there (API.md: async_with(R resource, body)).
CORIO_TEST(AsyncWith, ResourceValueIsClosedAfterTheBody) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    bool supported = co_await resource_value_scenario<Resource>(&log, t0);
    // async_with(R resource, F body) must accept a resource type without a nested value_type.
    EXPECT_TRUE(supported);
    if (!supported) co_return;
    EXPECT_EQ(log, (Log{"body v", "close renamed@2000", "result 5"}));
}

// ---------------------------------------------------------------------------------------------
// AsyncExitStack
// ---------------------------------------------------------------------------------------------

// test_contextlib_async.py::TestAsyncExitStack::test_enter_async_context, test_async_callback:
// resources and callbacks are closed last in, first out; enter_async_context returns a pointer
// to the resource the stack owns.
CORIO_TEST(AsyncExitStack, ClosesLastInFirstOut) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    AsyncExitStack stack;
    Resource* a = co_await stack.enter_async_context(open_resource("a", &log, t0, 1s));
    stack.push_async_callback([&log, t0]() -> Coro<> {
        co_await sleep(1s);
        log.push_back(tag("callback 1", t0));
    });
    Resource* b = co_await stack.enter_async_context(open_resource("b", &log, t0));
    stack.push_async_callback([&log, t0]() -> Coro<> {
        log.push_back(tag("callback 2", t0));
        co_return;
    });
    CO_ASSERT_TRUE(a != nullptr && b != nullptr);
    EXPECT_EQ(a->name, "a");
    EXPECT_EQ(b->name, "b");
    a->name = "a'";  // the stack closes the very object it returned
    Coro<> closing = stack.aclose();
    co_await std::move(closing);
    EXPECT_EQ(log, (Log{"open a@0", "open b@0", "callback 2@0", "close b@0", "callback 1@1000", "close a'@2000"}));
    // Closing again does nothing: every exit already ran.
    Coro<> again = stack.aclose();
    co_await std::move(again);
    EXPECT_EQ(log.size(), 6u);
}

// test_contextlib_async.py::TestAsyncExitStack::test_async_exit_exception_chaining (each exit
// runs; the exception raised last, by the first callback registered, is the one that propagates)
CORIO_TEST(AsyncExitStack, ExitThatThrowsDoesNotStopTheOthers) {
    corio::testing::MockClock clock;  // virtual time: the logged times are exact
    Log log;
    AsyncExitStack stack;
    for (std::string name : {"A", "B", "C"}) {
        stack.push_async_callback([&log, name]() -> Coro<> {
            log.push_back("exit " + name);
            if (name != "B") throw ValueError(name);
            co_return;
        });
    }
    Coro<> closing = stack.aclose();
    std::string r = co_await outcome(std::move(closing));
    EXPECT_EQ(log, (Log{"exit C", "exit B", "exit A"}));
    EXPECT_EQ(r, "A");
}

namespace {
Coro<> cancelled_with_stack(Log* log, Clock::time_point t0) {
    AsyncExitStack stack;
    std::exception_ptr error;
    try {
        (void)co_await stack.enter_async_context(open_resource("a", log, t0, 1s));
        stack.push_async_callback([log, t0]() -> Coro<> {
            co_await sleep(1s);
            log->push_back(tag("callback", t0));
        });
        co_await sleep(10s);
    } catch (const CancelledError&) {
        log->push_back(tag("cancelled", t0));
        error = std::current_exception();
    }
    Coro<> closing = stack.aclose();
    co_await std::move(closing);
    if (error) std::rethrow_exception(error);
}
}  // namespace

// Cancellation of the owner: every exit still runs, and may await.
CORIO_TEST(AsyncExitStack, ExitsRunAndMayAwaitAfterCancellation) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(cancelled_with_stack(&log, t0));
    co_await sleep(1s);
    t.cancel();
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:");
    EXPECT_EQ(log, (Log{"open a@0", "cancelled@1000", "callback@2000", "close a@3000"}));
}

namespace {
struct StackBody {
    Log* log;
    Clock::time_point t0;
    Coro<> operator()(AsyncExitStack& stack) const {
        Resource* r = co_await stack.enter_async_context(open_resource("a", log, t0, 1s));
        Log* l = log;
        Clock::time_point start = t0;
        stack.push_async_callback([l, start]() -> Coro<> {
            l->push_back(tag("callback", start));
            co_return;
        });
        log->push_back("body " + r->name);
    }
};

template <class Stack>
Coro<bool> stack_scenario(Log* log, Clock::time_point t0) {
    if constexpr (AsyncWithAcceptsValue<Stack, StackBody>) {
        co_await async_with(Stack{}, StackBody{log, t0});
        log->push_back("after with");
        co_return true;
    } else {
        co_return false;
    }
}
}  // namespace

// `async with AsyncExitStack() as stack:` (test_contextlib_async.py::TestAsyncExitStack::test_enter_async_context)
CORIO_TEST(AsyncExitStack, WorksAsAnAsyncWithResource) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    bool supported = co_await stack_scenario<AsyncExitStack>(&log, t0);
    // async_with(AsyncExitStack{}, body) must compile (the stack has no value_type).
    EXPECT_TRUE(supported);
    if (!supported) co_return;
    EXPECT_EQ(log, (Log{"open a@0", "body a", "callback@0", "close a@1000", "after with"}));
}

namespace {
// A resource whose __aexit__ takes two seconds (a server waiting for its handlers, say).
struct SlowToClose {
    Coro<> aclose() { co_await sleep(2s); }
};
Coro<SlowToClose> open_slow_to_close() { co_return SlowToClose{}; }

Coro<> uses_a_slow_to_close_resource() {
    auto body = [](SlowToClose&) -> Coro<> { co_await sleep(1h); };
    Coro<> using_it = async_with(open_slow_to_close(), body);
    co_await std::move(using_it);
}

// The same through @asynccontextmanager's form: its cleanup after the co_yield takes two seconds.
AsyncGenerator<int> slow_to_close_manager() {
    std::exception_ptr error;
    try {
        co_yield 1;
    } catch (...) {
        error = std::current_exception();
    }
    co_await sleep(2s);
    if (error) std::rethrow_exception(error);
}

Coro<> uses_a_slow_to_close_manager() {
    auto body = [](int&) -> Coro<> { co_await sleep(1h); };
    Coro<> using_it = async_with(slow_to_close_manager(), body);
    co_await std::move(using_it);
}

Coro<> closes_a_stack_slowly() {
    AsyncExitStack stack;
    stack.push_async_callback([]() -> Coro<> { co_await sleep(2s); });
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
    }
    co_await stack.aclose();
    throw CancelledError();
}
}  // namespace

// Debug mode waits for an aclose(), a stack's exits or a generator manager's cleanup after a
// cancellation, as it waits for serve_forever's clean-up: a two-second __aexit__ is no
// swallowed cancellation (it was reported as "still running 1 s after" its CancelledError;
// python3 -X dev is quiet).
CORIO_TEST(AsyncWith, DebugModeWaitsForASlowCloseAfterACancellation) {
    corio::testing::MockClock clock;
    corio_test::CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    Task<> with = create_task(uses_a_slow_to_close_resource(), "with");
    Task<> stack = create_task(closes_a_stack_slowly(), "stack");
    Task<> manager = create_task(uses_a_slow_to_close_manager(), "manager");
    auto started = sleep(0s);
    co_await std::move(started);
    with.cancel();
    stack.cancel();
    manager.cancel();
    for (Task<>* t : {&with, &stack, &manager}) {
        try {
            co_await *t;
        } catch (const CancelledError&) {
        }
    }
    get_running_loop().set_debug(false);
    EXPECT_TRUE(with.cancelled());
    EXPECT_TRUE(stack.cancelled());
    EXPECT_TRUE(manager.cancelled());
    EXPECT_TRUE(captured.reports.empty()) << all_messages(captured.reports);
}

namespace {
corio::AsyncGenerator<int> counting_with_cleanup(Log* log) {
    struct Finally {
        Log* log;
        ~Finally() { log->push_back("generator cleaned up"); }
    } finally{log};
    for (int i = 0;; ++i) co_yield i;
}
}  // namespace

// CM2, contextlib.aclosing(gen): a pointer to a generator is a resource (its aclose()), so
// async_with(&gen, body) closes the generator on every way out, here a break from the loop.
CORIO_TEST(AsyncWith, APointerToAGeneratorIsAclosing) {
    Log log;
    auto numbers = counting_with_cleanup(&log);
    auto body = [](corio::AsyncGenerator<int>* gen) -> Coro<int> {
        int sum = 0;
        while (auto v = co_await gen->next()) {
            sum += *v;
            if (*v == 3) break;
        }
        co_return sum;
    };
    Coro<int> closing = async_with(&numbers, body);
    const int sum = co_await std::move(closing);
    EXPECT_EQ(sum, 6);
    EXPECT_EQ(log, Log{"generator cleaned up"});
}
