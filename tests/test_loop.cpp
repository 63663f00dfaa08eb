// The event loop: FIFO ready queue, the next-tick rule, timers (deadline order, FIFO among equal
// deadlines, negative delays), Handle/TimerHandle cancel, callback errors, call_soon_threadsafe,
// and virtual time (MockClock). stop/run_forever/run_until on a loop made by hand, re-entrancy
// and closing are in test_loop_manual.cpp.
// Ports CPython's Lib/test/test_asyncio/test_base_events.py and test_events.py; each test names
// the CPython test (or the asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <atomic>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::CapturedReports;

namespace {

Coro<> ticks(int n) {
    for (int i = 0; i < n; ++i) co_await sleep(0s);
}

using Log = std::vector<std::string>;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Ready queue and ticks (L1, L2)
// ---------------------------------------------------------------------------------------------

// L1 / test_events.py::EventLoopTestsMixin::test_call_soon: callbacks run in call_soon order.
CORIO_TEST(Loop, CallSoonRunsCallbacksInFifoOrder) {
    EventLoop& loop = get_running_loop();
    Log log;
    for (int i = 0; i < 10; ++i) loop.call_soon([&log, i] { log.push_back(std::to_string(i)); });
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
}

// L2 / test_base_events.py::BaseEventLoopTests::test_run_once: what a tick schedules runs in
// the next tick, after everything that was already queued (the task's own wake-up included).
CORIO_TEST(Loop, WhatATickSchedulesRunsInTheNextTick) {
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_soon([&] {
        log.push_back("a");
        loop.call_soon([&] { log.push_back("a2"); });
    });
    loop.call_soon([&] { log.push_back("b"); });
    co_await sleep(0s);  // queued behind a and b; a2 is not due yet
    log.push_back("main");
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"a", "b", "main", "a2"}));
}

// L2 / test_tasks.py::SleepTests::test_sleep_zero: a callback scheduled before sleep(0) has run
// when the task resumes; sleep(0) yields for exactly one tick.
CORIO_TEST(Loop, SleepZeroLetsQueuedCallbacksRunFirstAndYieldsOneTick) {
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_soon([&] {
        log.push_back("cb");
        loop.call_soon([&] { log.push_back("cb-next-tick"); });
    });
    co_await sleep(0s);
    log.push_back("resumed");
    EXPECT_EQ(log, (Log{"cb", "resumed"}));
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"cb", "resumed", "cb-next-tick"}));
}

// call_at_tick_end (corio's own, for the streams' coalesced writes): after the tick's ready
// work, before the next tick; one scheduled there runs in the same tick end, a call_soon made
// there on the next tick; an error goes to the exception handler.
CORIO_TEST(Loop, TickEndCallbacksRunAfterTheTicksReadyWorkAndBeforeTheNextTick) {
    EventLoop& loop = get_running_loop();
    CapturedReports cap;
    Log log;
    loop.call_soon([&] {
        log.push_back("soon1");
        loop.call_at_tick_end([&] {
            log.push_back("end1");
            loop.call_at_tick_end([&] {
                log.push_back("end2");
                throw std::runtime_error("from the tick end");
            });
            loop.call_soon([&] { log.push_back("next-tick"); });
        });
    });
    loop.call_soon([&] { log.push_back("soon2"); });
    co_await sleep(0s);  // queued behind soon1 and soon2
    log.push_back("main");
    EXPECT_EQ(log, (Log{"soon1", "soon2", "main"}));  // the tick end is still to come
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"soon1", "soon2", "main", "end1", "end2"}));
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"soon1", "soon2", "main", "end1", "end2", "next-tick"}));
    CO_ASSERT_EQ(cap.reports.size(), 1u);
    EXPECT_EQ(cap.reports[0].message, "Exception in callback");
}

// ---------------------------------------------------------------------------------------------
// Timers (L3, L4)
// ---------------------------------------------------------------------------------------------

// L3: timers fire in deadline order, whatever order they were set in.
CORIO_TEST(Loop, TimersFireInDeadlineOrder) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_later(3s, [&] { log.push_back("3s"); });
    loop.call_later(1s, [&] { log.push_back("1s"); });
    loop.call_later(2s, [&] { log.push_back("2s"); });
    co_await sleep(4s);
    EXPECT_EQ(log, (Log{"1s", "2s", "3s"}));
}

// L3 (API.md: "timers with equal deadlines fire in the order they were set"; asyncio leaves it
// undefined and corio fixes it).
// The arming counter is 32 bits: a timer armed just after it wraps still fires after one armed
// just before, at the same deadline.
TEST(LoopTimers, EqualDeadlineOrderSurvivesTheArmingCounterWrapping) {
    detail::TimerNode before_wrap, after_wrap, later;
    before_wrap.seq = 0xFFFFFFFFu;
    after_wrap.seq = 0;
    EXPECT_TRUE(detail::fires_before(before_wrap, after_wrap));
    EXPECT_FALSE(detail::fires_before(after_wrap, before_wrap));
    later.when = before_wrap.when + std::chrono::nanoseconds(1);
    later.seq = 0x7FFFFFFFu;  // armed earlier, due later: the deadline decides
    EXPECT_TRUE(detail::fires_before(after_wrap, later));
}

CORIO_TEST(Loop, EqualDeadlineTimersFireInInsertionOrder) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    const auto when = loop.time() + 1s;
    for (int i = 0; i < 20; ++i) {
        loop.call_at(when, [&log, i] { log.push_back(std::to_string(i)); });
        if (i % 3 == 0) loop.call_at(when + 1s, [&log, i] { log.push_back("late" + std::to_string(i)); });
    }
    loop.call_later(1s, [&log] { log.push_back("later"); });  // same deadline, set last
    co_await sleep(3s);
    Log expected;
    for (int i = 0; i < 20; ++i) expected.push_back(std::to_string(i));
    expected.push_back("later");
    for (int i = 0; i < 20; i += 3) expected.push_back("late" + std::to_string(i));
    EXPECT_EQ(log, expected);
}

// L3 / test_base_events.py::BaseEventLoopTests::test_call_later_negative_delays.
CORIO_TEST(Loop, NegativeDelaysSortByDeadline) {
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_later(-1s, [&] { log.push_back("a"); });
    loop.call_later(-2s, [&] { log.push_back("b"); });
    co_await ticks(2);
    EXPECT_EQ(log, (Log{"b", "a"}));
}

// L3: a deadline already passed is due on the next tick; when() reports the deadline.
CORIO_TEST(Loop, CallAtInThePastRunsOnTheNextTick) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    const auto past = loop.time() - 1h;
    TimerHandle h = loop.call_at(past, [&] { log.push_back("past"); });
    EXPECT_EQ(h.when(), past);
    EXPECT_TRUE(log.empty());
    co_await ticks(2);
    EXPECT_EQ(log, (Log{"past"}));
}

// L4 / test_base_events.py::BaseEventLoopTests::test__run_once: a cancelled TimerHandle never
// runs; the others still do.
CORIO_TEST(Loop, CancelledTimerHandleNeverRuns) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    TimerHandle a = loop.call_later(1s, [&] { log.push_back("a"); });
    TimerHandle b = loop.call_later(2s, [&] { log.push_back("b"); });
    EXPECT_FALSE(a.cancelled());
    a.cancel();
    EXPECT_TRUE(a.cancelled());
    a.cancel();  // idempotent
    co_await sleep(3s);
    EXPECT_EQ(log, (Log{"b"}));
}

// L4: a cancelled Handle (call_soon) is skipped; its neighbours run in order.
CORIO_TEST(Loop, CancelledHandleIsSkipped) {
    EventLoop& loop = get_running_loop();
    Log log;
    Handle a = loop.call_soon([&] { log.push_back("a"); });
    Handle b = loop.call_soon([&] { log.push_back("b"); });
    Handle c = loop.call_soon([&] { log.push_back("c"); });
    EXPECT_FALSE(b.cancelled());
    b.cancel();
    EXPECT_TRUE(b.cancelled());
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"a", "c"}));
}

// asyncio's Handle.cancelled(): false after the callback ran; cancel() afterwards marks the
// handle (and does nothing else).
CORIO_TEST(Loop, HandlesThatRanAreNotCancelled) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    int runs = 0;
    Handle soon = loop.call_soon([&] { ++runs; });
    TimerHandle later = loop.call_later(1s, [&] { ++runs; });
    co_await sleep(2s);
    EXPECT_EQ(runs, 2);
    EXPECT_FALSE(soon.cancelled());
    EXPECT_FALSE(later.cancelled());
    soon.cancel();
    later.cancel();
    EXPECT_TRUE(soon.cancelled());
    EXPECT_TRUE(later.cancelled());
    co_await sleep(2s);
    EXPECT_EQ(runs, 2);
}

// L4: a timer already due and moved to the ready queue, cancelled by a callback that runs before
// it in the same tick, is dropped.
CORIO_TEST(Loop, TimerCancelledByAnEarlierCallbackIsDropped) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    TimerHandle victim;
    loop.call_later(1s, [&] {
        log.push_back("killer");
        victim.cancel();
    });
    victim = loop.call_later(1s, [&] { log.push_back("victim"); });  // due in the same tick
    co_await sleep(3s);
    EXPECT_EQ(log, (Log{"killer"}));
}

// ---------------------------------------------------------------------------------------------
// Errors in callbacks (L5)
// ---------------------------------------------------------------------------------------------

// L5 / test_base_events.py::BaseEventLoopTests::test_default_exc_handler_callback: the error goes
// to the exception handler and the loop keeps running the following callbacks.
CORIO_TEST(Loop, CallbackExceptionGoesToTheHandlerAndTheLoopKeepsRunning) {
    CapturedReports cap;
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_soon([&] { log.push_back("before"); });
    loop.call_soon([] { throw std::runtime_error("callback failed"); });
    loop.call_soon([&] { log.push_back("after"); });
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"before", "after"}));
    CO_ASSERT_EQ(cap.reports.size(), 1u);
    EXPECT_EQ(cap.reports[0].message, "Exception in callback");
    bool right_error = false;
    try {
        std::rethrow_exception(cap.reports[0].exception);
    } catch (const std::runtime_error& e) {
        right_error = std::string(e.what()) == "callback failed";
    } catch (...) {
    }
    EXPECT_TRUE(right_error);
    // A timer callback that throws is handled the same way.
    loop.call_later(0s, [] { throw std::logic_error("timer failed"); });
    co_await ticks(2);
    EXPECT_EQ(cap.reports.size(), 2u);
}

// D6 / test_base_events.py::test_set_exc_handler_custom: the custom handler receives the loop.
CORIO_TEST(Loop, CustomExceptionHandlerReceivesTheLoop) {
    EventLoop& loop = get_running_loop();
    auto previous = loop.get_exception_handler();
    EventLoop* seen = nullptr;
    std::string message;
    loop.set_exception_handler([&](EventLoop& l, const ExceptionContext& c) {
        seen = &l;
        message = c.message;
    });
    ExceptionContext c;
    c.message = "hello handler";
    loop.call_exception_handler(c);
    loop.set_exception_handler(previous);
    EXPECT_EQ(seen, &loop);
    EXPECT_EQ(message, "hello handler");
    co_return;
}

// ---------------------------------------------------------------------------------------------
// Threads (L10)
// ---------------------------------------------------------------------------------------------

// L10 / test_events.py::EventLoopTestsMixin::test_call_soon_threadsafe: a callback posted from
// another thread wakes a loop that is blocked waiting (no timer, nothing ready).
// asyncio's Handle.cancel() drops the callback: a handle kept after cancel(), or after its
// callback ran, no longer keeps the captures (a connection it captured) alive.
CORIO_TEST(Loop, AHandleLetsGoOfItsCallbackOnceCancelledOrRun) {
    EventLoop& loop = get_running_loop();
    auto conn = std::make_shared<int>(1);
    std::weak_ptr<int> watch = conn;
    TimerHandle idle = loop.call_later(30s, [conn] {});
    Handle soon = loop.call_soon([conn] {});
    conn.reset();
    idle.cancel();
    soon.cancel();
    EXPECT_TRUE(watch.expired());
    auto used = std::make_shared<int>(2);
    std::weak_ptr<int> watch_used = used;
    Handle ran = loop.call_soon([used] {});
    TimerHandle fired = loop.call_later(0s, [used] {});
    used.reset();
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_TRUE(watch_used.expired());
    // A callback that cancels its own handle keeps running with its captures.
    auto self = std::make_shared<std::string>("still here");
    std::string seen;
    Handle own;
    own = loop.call_soon([self, &own, &seen] {
        own.cancel();
        seen = *self;
    });
    self.reset();
    co_await sleep(0s);
    EXPECT_EQ(seen, "still here");
}

// L3: a deadline at the very start of time is simply due: the poll timeout used to overflow
// (UBSan) into a wait of 1000 s with the timer due.
CORIO_TEST(Loop, ADeadlineAtTheStartOfTimeIsDueAtOnce) {
    EventLoop& loop = get_running_loop();
    Event due;
    TimerHandle h = loop.call_at(Clock::time_point::min(), [&due] { due.set(); });
    co_await due.wait();
    Event due_too;
    TimerHandle h2 = loop.call_later(Clock::duration::min(), [&due_too] { due_too.set(); });
    co_await due_too.wait();
}

// D6: a handler that replaces itself (a one-shot handler) keeps running with its captures; the
// old one was destroyed while it ran (ASan: heap-use-after-free).
CORIO_TEST(Loop, AnExceptionHandlerMayReplaceItselfWhileItRuns) {
    EventLoop& loop = get_running_loop();
    std::string seen;
    std::string message(64, 'x');
    loop.set_exception_handler([message, &seen](EventLoop& l, const ExceptionContext&) {
        l.set_exception_handler({});
        seen = message;
    });
    loop.call_soon([] { throw std::runtime_error("once"); });
    co_await sleep(0s);
    EXPECT_EQ(seen, message);
}

CORIO_TEST(Loop, CallSoonThreadsafeFromAnotherThreadWakesTheLoop) {
    EventLoop& loop = get_running_loop();
    const auto loop_thread = std::this_thread::get_id();
    Future<int> answer(loop);
    std::thread::id ran_on;
    std::latch go(1);
    std::thread poster([&] {
        go.wait();
        loop.call_soon_threadsafe([&] {
            ran_on = std::this_thread::get_id();
            answer.set_result(42);
        });
    });
    go.count_down();
    int v = co_await answer;
    poster.join();
    EXPECT_EQ(v, 42);
    EXPECT_EQ(ran_on, loop_thread);
}

// L10: many threads posting at once: every callback runs, on the loop thread, and the callbacks
// of one thread keep their order.
CORIO_TEST(Loop, CallSoonThreadsafeFromManyThreads) {
    EventLoop& loop = get_running_loop();
    constexpr int threads = 4, per_thread = 1000;
    const auto loop_thread = std::this_thread::get_id();
    Future<> all_in(loop);
    int count = 0;
    bool wrong_thread = false;
    std::vector<int> last(threads, -1);
    bool out_of_order = false;
    std::vector<std::thread> posters;
    std::latch go(1);
    for (int t = 0; t < threads; ++t) {
        posters.emplace_back([&, t] {
            go.wait();
            for (int i = 0; i < per_thread; ++i) {
                loop.call_soon_threadsafe([&, t, i] {
                    if (std::this_thread::get_id() != loop_thread) wrong_thread = true;
                    if (last[t] != i - 1) out_of_order = true;
                    last[t] = i;
                    if (++count == threads * per_thread) all_in.set_result();
                });
            }
        });
    }
    go.count_down();
    co_await all_in;
    for (auto& p : posters) p.join();
    EXPECT_EQ(count, threads * per_thread);
    EXPECT_FALSE(wrong_thread);
    EXPECT_FALSE(out_of_order);
}

// L10 (asyncio's idiom: loop.call_soon_threadsafe(loop.stop) from another thread, after which
// the loop's owner closes it): once the posted callback can run, call_soon_threadsafe must be
// done with the loop, so the loop may be destroyed as soon as that callback has stopped it.
TEST(LoopManual, LoopMayBeDestroyedRightAfterACrossThreadStop) {
    for (int i = 0; i < 100; ++i) {
        std::promise<EventLoop*> ready;
        std::thread owner([&] {
            EventLoop loop;
            loop.call_soon([&] { ready.set_value(&loop); });
            loop.run_forever();
            loop.close();
        });
        EventLoop* remote = ready.get_future().get();
        remote->call_soon_threadsafe([remote] { remote->stop(); });
        owner.join();
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual time (API.md Testing: MockClock)
// ---------------------------------------------------------------------------------------------

// A sleep of one hour completes at once in virtual time, and the loop's clock says an hour passed.
CORIO_TEST(Loop, MockClockJumpsVirtualTimeWhenIdle) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    const auto t0 = loop.time();
    EXPECT_EQ(t0, clock.now());
    const auto real0 = Clock::now();
    co_await sleep(1h);
    EXPECT_EQ(loop.time() - t0, 1h);
    EXPECT_EQ(clock.seconds_since(t0), 3600.0);
    EXPECT_LT(Clock::now() - real0, 1h);  // certainly not a real hour
}

// advance() moves time forward; timers that became due fire on the following tick, behind what
// was already queued; timers not yet due wait.
CORIO_TEST(Loop, MockClockAdvanceFiresDueTimersOnTheNextTick) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Log log;
    loop.call_later(5s, [&] { log.push_back("5s"); });
    loop.call_later(10s, [&] { log.push_back("10s"); });
    const auto t0 = loop.time();
    clock.advance(5s);
    EXPECT_EQ(loop.time() - t0, 5s);
    co_await sleep(0s);  // the timer becomes due in the tick this resumption runs in, behind it
    log.push_back("main");
    co_await sleep(0s);
    EXPECT_EQ(log, (Log{"main", "5s"}));
    co_await sleep(5s);  // the 10s timer was set first: it fires before this sleep ends
    EXPECT_EQ(log, (Log{"main", "5s", "10s"}));
    EXPECT_EQ(loop.time() - t0, 10s);
}

// Virtual time does not jump while something is ready: a busy loop of sleep(0) never lets a
// timer fire early.
CORIO_TEST(Loop, MockClockDoesNotJumpWhileWorkIsReady) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    bool fired = false;
    loop.call_later(1s, [&] { fired = true; });
    const auto t0 = loop.time();
    co_await ticks(100);
    EXPECT_FALSE(fired);
    EXPECT_EQ(loop.time(), t0);
    co_await sleep(1s);
    EXPECT_TRUE(fired);
}
