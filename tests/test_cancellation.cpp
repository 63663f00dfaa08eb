// "Cancel at every await": for each core awaitable, cancelling the awaiting task delivers
// CancelledError exactly at that await, the cleanup (catch blocks, destructors) runs, nothing is
// left pending (the harness fails a test that leaves a task), and nested scopes never swallow an
// outer cancellation. asyncio-rules.md 1.T (T4-T9), 1.G, W4, WF5, TO5, TG6, TH, AG; §3 P3-P5.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <atomic>
#include <array>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

namespace {

using Log = std::vector<std::string>;

// Logs "~<name>" when destroyed: shows that a frame's locals were cleaned up, and when.
struct Guard {
    Log* log;
    std::string name;
    Guard(Log* l, std::string n) : log(l), name(std::move(n)) {}
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { log->push_back("~" + name); }
};

// Awaits `t` and says how it ended: "ok", "CancelledError:<message>", or the error's what().
template <class T>
Coro<std::string> outcome(Task<T> t) {
    std::string out = "ok";
    try {
        co_await t;
    } catch (const CancelledError& e) {
        out = std::string("CancelledError:") + e.what();
    } catch (const TimeoutError&) {
        out = "TimeoutError";
    } catch (const ExceptionGroup&) {
        out = "ExceptionGroup";
    } catch (const std::exception& e) {
        out = e.what();
    }
    co_return out;
}

// `co_await aw` inside the probe's frame: logs where the CancelledError arrived, then re-raises.
#define AWAIT_PROBE(log, where, ...)                                                         \
    do {                                                                                     \
        try {                                                                                \
            __VA_ARGS__;                                                                     \
        } catch (const CancelledError& e) {                                                  \
            (log)->push_back(std::string("CancelledError at " where ":") + e.what());       \
            throw;                                                                           \
        }                                                                                    \
        (log)->push_back("passed " where);                                                   \
    } while (0)

// A child that sleeps; on cancel it spends `cleanup` awaiting, then re-raises.
Coro<int> child(std::string name, Clock::duration d, Clock::duration cleanup, Log* log, Clock::time_point t0) {
    Guard g(log, name);
    std::exception_ptr cancelled;
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        log->push_back(tag(name + " cancelled", t0));
        co_await sleep(cleanup);
        log->push_back(tag(name + " cleaned up", t0));
        std::rethrow_exception(cancelled);
    }
    log->push_back(tag(name + " done", t0));
    co_return 1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// sleep
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> probe_sleep(Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "sleep", co_await sleep(10s));
}
Coro<> self_cancel_then_sleep(Log* log) {
    Guard g(log, "probe");
    current_task().cancel("self");
    log->push_back("still running");
    AWAIT_PROBE(log, "sleep", co_await sleep(100s));
}
}  // namespace

// test_tasks.py::BaseTaskTests::test_task_cancel_sleeping_task, test_sleep_cancel
CORIO_TEST(CancelAtAwait, Sleep) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(probe_sleep(&log));
    co_await sleep(1s);
    EXPECT_TRUE(t.cancel("m"));
    EXPECT_FALSE(t.done());  // delivered when the task resumes, never inline
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (Log{"CancelledError at sleep:m", "~probe"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
    // The cancelled sleep's timer is gone (a stale one would fire into a dead frame at 10 s).
    co_await sleep(20s);
    EXPECT_EQ(ms_since(t0), 21000.0);
}

// test_tasks.py::BaseTaskTests::test_cancel_current_task: a task that cancels itself is
// cancelled at its next await, which does not wait at all.
CORIO_TEST(CancelAtAwait, SelfCancelIsDeliveredAtTheNextAwait) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(self_cancel_then_sleep(&log));
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:self");
    EXPECT_EQ(log, (Log{"still running", "CancelledError at sleep:self", "~probe"}));
    EXPECT_EQ(ms_since(t0), 0.0);
}

// ---------------------------------------------------------------------------------------------
// awaiting a task
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> probe_task_await(Task<int> inner, Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "task await", (void)co_await inner);
}
}  // namespace

// test_tasks.py::BaseTaskTests::test_cancel_awaited_task (bpo-34872): cancelling a task that
// awaits another cancels that one too, and waits for it to finish cancelling.
CORIO_TEST(CancelAtAwait, TaskAwait) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<int> inner = create_task(child("inner", 10s, 1s, &log, t0));
    Task<> t = create_task(probe_task_await(inner, &log));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_TRUE(inner.cancelled());
    EXPECT_EQ(log, (Log{"inner cancelled@1000", "inner cleaned up@2000", "~inner", "CancelledError at task await:m",
                        "~probe"}));
    EXPECT_EQ(ms_since(t0), 2000.0);
}

namespace {
Coro<int> swallows(Log* log) {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        log->push_back("inner swallowed");
    }
    co_return 42;
}
Coro<> awaits_swallower(Task<int> inner, Log* log) {
    int v = co_await inner;
    log->push_back(str("outer got ", v));
    co_await sleep(1s);  // edge-triggered: not cancelled again
    log->push_back("outer went on");
}
}  // namespace

// test_tasks.py::BaseTaskTests::test_cancel_awaited_task's other half (Task.cancel leaves the
// waiter on an inner task that may ignore the cancel): the awaiter gets the inner's value.
CORIO_TEST(CancelAtAwait, AwaitedTaskSwallowingTheCancelGivesItsValue) {
    corio::testing::MockClock clock;
    Log log;
    Task<int> inner = create_task(swallows(&log));
    Task<> t = create_task(awaits_swallower(inner, &log));
    co_await sleep(1s);
    t.cancel();
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "ok");
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(log, (Log{"inner swallowed", "outer got 42", "outer went on"}));
}

// ---------------------------------------------------------------------------------------------
// gather, wait, wait_for
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> probe_gather(Task<int> a, Task<int> b, Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "gather", (void)co_await gather(a, b));
}
}  // namespace

// test_tasks.py::GatherTestsBase / test_cancel_gather_2 (T11: the message survives gather):
// cancelling the gather cancels every child and waits for them before raising.
CORIO_TEST(CancelAtAwait, Gather) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<int> a = create_task(child("a", 10s, 2s, &log, t0));
    Task<int> b = create_task(child("b", 10s, 1s, &log, t0));
    Task<> t = create_task(probe_gather(a, b, &log));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
    EXPECT_EQ(log, (Log{"a cancelled@1000", "b cancelled@1000", "b cleaned up@2000", "~b", "a cleaned up@3000", "~a",
                        "CancelledError at gather:m", "~probe"}));
    EXPECT_EQ(ms_since(t0), 3000.0);
}

namespace {
Coro<> probe_wait(std::vector<Task<int>> tasks, Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "wait", (void)co_await wait(tasks));
}
}  // namespace

// test_tasks.py::BaseTaskTests::test_yield_wait_does_not_shield_cancel (W4): the waiter is
// cancelled at once; the awaited tasks are not cancelled and run on.
CORIO_TEST(CancelAtAwait, WaitDoesNotCancelTheAwaitedTasks) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<int> a = create_task(child("a", 5s, 0s, &log, t0));
    Task<int> b = create_task(child("b", 6s, 0s, &log, t0));
    Task<> t = create_task(probe_wait({a, b}, &log));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_EQ(ms_since(t0), 1000.0);
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    EXPECT_EQ(co_await a, 1);
    EXPECT_EQ(co_await b, 1);
    EXPECT_EQ(log, (Log{"CancelledError at wait:m", "~probe", "a done@5000", "~a", "b done@6000", "~b"}));
}

namespace {
Coro<> probe_wait_for(std::optional<Clock::duration> limit, Log* log, Clock::time_point t0) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "wait_for", (void)co_await wait_for(child("inner", 10s, 1s, log, t0), limit));
}
}  // namespace

// test_waitfor.py::test_cancel_wait_for, test_cancel_blocking_wait_for (WF5): the inner (a
// Coro, running in the waiter's own task) sees the cancel, cleans up, then the waiter raises.
CORIO_TEST(CancelAtAwait, WaitFor) {
    corio::testing::MockClock clock;
    const std::array<std::optional<Clock::duration>, 2> limits{std::nullopt, Clock::duration(1h)};
    for (std::optional<Clock::duration> limit : limits) {
        auto t0 = get_running_loop().time();
        Log log;
        Task<> t = create_task(probe_wait_for(limit, &log, t0));
        co_await sleep(1s);
        t.cancel("m");
        std::string r = co_await outcome(t);
        EXPECT_EQ(r, "CancelledError:m");
        EXPECT_EQ(log, (Log{"inner cancelled@1000", "inner cleaned up@2000", "~inner", "CancelledError at wait_for:m",
                            "~probe"}));
        EXPECT_EQ(ms_since(t0), 2000.0);
    }
}

// ---------------------------------------------------------------------------------------------
// timeout, TaskGroup exit
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> probe_timeout(Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "timeout", co_await timeout(10s, [&](Timeout&) -> Coro<> {
                    Guard inner(log, "scope body");
                    AWAIT_PROBE(log, "sleep in timeout", co_await sleep(100s));
                }));
}
}  // namespace

// test_timeouts.py::test_foreign_cancel_doesnt_timeout_if_not_expired (TO5)
CORIO_TEST(CancelAtAwait, Timeout) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(probe_timeout(&log));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (Log{"CancelledError at sleep in timeout:m", "~scope body", "CancelledError at timeout:m", "~probe"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
}

namespace {
Coro<> probe_task_group_exit(Log* log, Clock::time_point t0) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "TaskGroup exit", co_await task_group([&](TaskGroup& tg) -> Coro<> {
                    tg.create_task(child("a", 10s, 1s, log, t0));
                    tg.create_task(child("b", 10s, 2s, log, t0));
                    co_return;  // the task now waits in the group's exit
                }));
}
}  // namespace

// test_taskgroups.py::test_taskgroup_22 (TG6): cancelled while waiting in the group's exit.
CORIO_TEST(CancelAtAwait, TaskGroupExit) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(probe_task_group_exit(&log, t0));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_EQ(log, (Log{"a cancelled@1000", "b cancelled@1000", "a cleaned up@2000", "~a", "b cleaned up@3000", "~b",
                        "CancelledError at TaskGroup exit:m", "~probe"}));
    EXPECT_EQ(ms_since(t0), 3000.0);
}

// ---------------------------------------------------------------------------------------------
// to_thread / run_in_executor
// ---------------------------------------------------------------------------------------------

namespace {
// What a thread function shares with the test; owned jointly, so that the thread may finish
// after the awaiting frame has gone.
struct Blocker {
    std::mutex m;
    std::condition_variable_any cv;
    bool release = false;
    std::atomic<bool> started{false};
    std::atomic<bool> saw_stop{false};
    std::atomic<bool> finished{false};
};

Coro<> probe_to_thread(std::shared_ptr<Blocker> b, Log* log) {
    Guard g(log, "probe");
    auto fn = [b](std::stop_token st) {
        b->started = true;
        std::unique_lock lock(b->m);
        b->cv.wait(lock, st, [&] { return b->release; });
        b->saw_stop = st.stop_requested();
        b->finished = true;
    };
    AWAIT_PROBE(log, "to_thread", co_await to_thread(fn));
}
}  // namespace

// asyncio-rules.md TH / §3 P9: cancelling the awaiting task stops the wait at once, not the thread;
// a function taking a std::stop_token gets a stop request.
CORIO_TEST(CancelAtAwait, ToThread) {
    auto b = std::make_shared<Blocker>();
    Log log;
    Task<> t = create_task(probe_to_thread(b, &log));
    while (!b->started) co_await sleep(0s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_EQ(log, (Log{"CancelledError at to_thread:m", "~probe"}));
    while (!b->finished) co_await sleep(0s);  // the thread ends on its own, told to stop
    EXPECT_TRUE(b->saw_stop);
}

namespace {
Coro<> probe_queued_call(ThreadPool* pool, std::shared_ptr<std::atomic<bool>> ran, Log* log) {
    Guard g(log, "probe");
    auto fn = [ran] { *ran = true; };
    AWAIT_PROBE(log, "run_in_executor", co_await run_in_executor(*pool, fn));
}
}  // namespace

// P9: a call that has not started yet when its waiter is cancelled is dropped.
CORIO_TEST(CancelAtAwait, RunInExecutorDropsACallNotStarted) {
    auto b = std::make_shared<Blocker>();
    auto ran = std::make_shared<std::atomic<bool>>(false);
    Log log;
    ThreadPool pool(1);
    auto occupy = [b] {
        b->started = true;
        std::unique_lock lock(b->m);
        b->cv.wait(lock, [&] { return b->release; });
    };
    auto busy = run_in_executor(pool, occupy);
    auto occupier = [&]() -> Coro<> { co_await std::move(busy); };
    Task<> o = create_task(occupier());
    while (!b->started) co_await sleep(0s);
    Task<> t = create_task(probe_queued_call(&pool, ran, &log));
    co_await sleep(0s);  // t is now waiting, its call queued behind the blocker
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    {
        std::lock_guard lock(b->m);
        b->release = true;
    }
    b->cv.notify_all();
    co_await o;
    pool.shutdown();  // runs whatever is still queued, then joins
    EXPECT_FALSE(*ran) << "the dropped call must never run";
    EXPECT_EQ(log, (Log{"CancelledError at run_in_executor:m", "~probe"}));
}

// ---------------------------------------------------------------------------------------------
// async generator next()
// ---------------------------------------------------------------------------------------------

namespace {
AsyncGenerator<int> slow_gen(Log* log) {
    Guard g(log, "generator frame local");
    co_yield 1;
    AWAIT_PROBE(log, "sleep in generator", co_await sleep(10s));
    co_yield 2;
}
Coro<> probe_generator(AsyncGenerator<int>* gen, Log* log) {
    Guard g(log, "probe");
    auto first = co_await gen->next();
    log->push_back(str("got ", first.value_or(-1)));
    AWAIT_PROBE(log, "next", (void)co_await gen->next());
}
}  // namespace

// test_asyncgen.py::AsyncGenAsyncioTest::test_async_gen_asyncio_asend_03: the cancel reaches
// the generator's own await, unwinds it, and arrives at next() in the consumer.
CORIO_TEST(CancelAtAwait, GeneratorNext) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    auto gen = slow_gen(&log);
    Task<> t = create_task(probe_generator(&gen, &log));
    co_await sleep(1s);
    t.cancel("m");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:m");
    EXPECT_EQ(log, (Log{"got 1", "CancelledError at sleep in generator:m", "~generator frame local",
                        "CancelledError at next:m", "~probe"}));
    EXPECT_TRUE(gen.done());
    EXPECT_EQ(ms_since(t0), 1000.0);
}

// ---------------------------------------------------------------------------------------------
// Nested scopes never swallow an outer cancellation (P3, P5)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> inner_timeout_child(Log* log) {
    co_await timeout(50s, [&](Timeout&) -> Coro<> {
        AWAIT_PROBE(log, "child's timeout", co_await sleep(1000s));
    });
}
Coro<> nested_scopes(Log* log) {
    Guard g(log, "probe");
    AWAIT_PROBE(log, "outer timeout", co_await timeout(100s, [&](Timeout&) -> Coro<> {
                    co_await task_group([&](TaskGroup& tg) -> Coro<> {
                        tg.create_task(inner_timeout_child(log));
                        co_await timeout(60s, [&](Timeout&) -> Coro<> {
                            AWAIT_PROBE(log, "body's timeout", co_await sleep(1000s));
                        });
                    });
                }));
}
}  // namespace

// Timeout inside TaskGroup inside timeout, none expired: an outer cancel arrives as
// CancelledError (not TimeoutError, not an ExceptionGroup), reaching the body first and then
// the child, and nothing stays cancelled or pending.
CORIO_TEST(CancelAtAwait, NestedScopesPassAnOuterCancelThrough) {
    corio::testing::MockClock clock;
    auto t0 = get_running_loop().time();
    Log log;
    Task<> t = create_task(nested_scopes(&log));
    co_await sleep(1s);
    t.cancel("outer");
    std::string r = co_await outcome(t);
    EXPECT_EQ(r, "CancelledError:outer");
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (Log{"CancelledError at body's timeout:outer", "CancelledError at child's timeout:",
                        "CancelledError at outer timeout:outer", "~probe"}));
    EXPECT_EQ(ms_since(t0), 1000.0);
}

namespace {
// A task in a TaskGroup whose body sits in a 1 s timeout; it publishes the Timeout.
Coro<> body_in_timeout(Timeout** published, Log* log) {
    co_await task_group([&](TaskGroup& tg) -> Coro<> {
        tg.create_task(child("c", 1000s, 0s, log, get_running_loop().time()));
        co_await timeout(1s, [&](Timeout& cm) -> Coro<> {
            *published = &cm;
            std::exception_ptr cancelled;
            try {
                co_await sleep(1000s);
            } catch (const CancelledError& e) {
                log->push_back(std::string("body cancelled:") + e.what());
                cancelled = std::current_exception();
            }
            *published = nullptr;
            if (cancelled) {
                log->push_back("cleanup");
                AWAIT_PROBE(log, "cleanup", co_await sleep(1s));
                std::rethrow_exception(cancelled);
            }
        });
    });
}
// Sleeps until `at`, then cancels `t`; with `expire_now`, then also makes t's timeout due at
// once (it fires at the start of the next tick, before t resumes).
Coro<> canceller(Task<>* t, Clock::time_point at, Timeout** timeout_of_t, bool expire_now) {
    co_await sleep_until(at);
    t->cancel("outer");
    if (expire_now && *timeout_of_t) (*timeout_of_t)->reschedule(get_running_loop().time());
}
}  // namespace

// The outer cancel lands around an inner timeout's expiry, in every order: the timeout sees a
// cancel request that is not its own, and lets CancelledError through (P5). Inside a TaskGroup.
CORIO_TEST(CancelAtAwait, OuterCancelAroundAnInnerExpiryIsNotSwallowed) {
    corio::testing::MockClock clock;
    enum Order { CancelThenExpiry, ExpiryThenCancel, CancelDuringExpiryCleanup };
    const std::array<Order, 3> orders{CancelThenExpiry, ExpiryThenCancel, CancelDuringExpiryCleanup};
    for (Order order : orders) {
        auto t0 = get_running_loop().time();
        Log log;
        Timeout* timeout_of_t = nullptr;
        Task<> t;
        Task<> c;
        if (order == CancelThenExpiry) {
            // At 500 ms: cancel, then the timeout made due at once. The expiry is queued behind
            // t's wake-up (asyncio's call_soon(_on_timeout)): t sees "outer", and the expiry
            // lands in its cleanup.
            t = create_task(body_in_timeout(&timeout_of_t, &log));
            c = create_task(canceller(&t, t0 + 500ms, &timeout_of_t, true));
        } else if (order == ExpiryThenCancel) {
            // At 1 s, both due in the same tick, and both requests land before t resumes. c's
            // timer was set first, but c runs a tick after it (asyncio's sleep sets a future that
            // wakes the task), while the expiry cancels what t awaits at once: t sees the
            // expiry's message-less CancelledError, and since "outer" still stands the timeout
            // lets it through (python3, the same program).
            c = create_task(canceller(&t, t0 + 1s, &timeout_of_t, false));
            t = create_task(body_in_timeout(&timeout_of_t, &log));
        } else {
            // At 1.5 s: the timeout's CancelledError was delivered, the body is cleaning up.
            t = create_task(body_in_timeout(&timeout_of_t, &log));
            c = create_task(canceller(&t, t0 + 1500ms, &timeout_of_t, false));
        }
        std::string r = co_await outcome(t);
        co_await c;
        EXPECT_TRUE(t.cancelled());
        EXPECT_EQ(t.cancelling(), 1) << "the timeout took back only its own request";
        if (order == CancelThenExpiry) {
            // The expiry's (message-less) CancelledError, thrown into the cleanup, is the one
            // that ends t; the timeout does not turn it into TimeoutError, since "outer" is
            // still requested.
            EXPECT_EQ(r, "CancelledError:");
            EXPECT_EQ(log, (Log{"body cancelled:outer", "cleanup", "CancelledError at cleanup:", "c cancelled@500", "c cleaned up@500", "~c"}));
            EXPECT_EQ(ms_since(t0), 500.0);
        } else if (order == ExpiryThenCancel) {
            EXPECT_EQ(r, "CancelledError:");
            EXPECT_EQ(log, (Log{"body cancelled:", "cleanup", "passed cleanup", "c cancelled@2000", "c cleaned up@2000", "~c"}));
            EXPECT_EQ(ms_since(t0), 2000.0);
        } else {
            EXPECT_EQ(r, "CancelledError:outer");
            EXPECT_EQ(log, (Log{"body cancelled:", "cleanup", "CancelledError at cleanup:outer", "c cancelled@1500", "c cleaned up@1500", "~c"}));
            EXPECT_EQ(ms_since(t0), 1500.0);
        }
    }
}
