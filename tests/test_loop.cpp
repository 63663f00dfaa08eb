// The event loop: FIFO ready queue, the next-tick rule, timers (deadline order, FIFO among equal
// deadlines, negative delays), Handle/TimerHandle cancel, callback errors, call_soon_threadsafe,
// stop/run_forever/run_until, re-entrancy, closing, and virtual time (MockClock).
// Ports CPython's Lib/test/test_asyncio/test_base_events.py and test_events.py; each test names
// the CPython test (or the asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include <atomic>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct CapturedReports {
    CapturedReports() : loop(get_running_loop()), previous(loop.get_exception_handler()) {
        loop.set_exception_handler([this](EventLoop&, const ExceptionContext& c) { reports.push_back(c); });
    }
    ~CapturedReports() { loop.set_exception_handler(previous); }
    CapturedReports(const CapturedReports&) = delete;
    CapturedReports& operator=(const CapturedReports&) = delete;

    EventLoop& loop;
    EventLoop::ExceptionHandler previous;
    std::vector<ExceptionContext> reports;
};

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
// run_forever / stop / run_until on a loop made by hand (L7)
// ---------------------------------------------------------------------------------------------

// L7: stop() makes run_forever return after the current tick; what that tick scheduled waits
// for the next run.
TEST(LoopManual, StopMakesRunForeverReturnAfterTheCurrentTick) {
    EventLoop loop;
    Log log;
    loop.call_soon([&] {
        log.push_back("a");
        loop.call_soon([&] { log.push_back("next-tick"); });
    });
    loop.call_soon([&] {
        log.push_back("stop");
        loop.stop();
    });
    loop.call_soon([&] { log.push_back("b"); });
    loop.run_forever();
    EXPECT_EQ(log, (Log{"a", "stop", "b"}));
    EXPECT_FALSE(loop.is_running());
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    EXPECT_EQ(log, (Log{"a", "stop", "b", "next-tick"}));
    loop.close();
}

namespace {
Coro<> wait_for_event(Event* e) { co_await e->wait(); }
Coro<> await_a_child(Event* e) {
    Task<> child = create_task(wait_for_event(e));
    co_await child;
}
}  // namespace

// A loop closed with tasks still pending destroys their frames, in the order the tasks were
// created: the parent first, whose frame holds its place in the child's waiter list. That place
// must be left before the frame goes, or ending the child touches freed memory (ASan sees it).
TEST(LoopManual, ClosingWithPendingTasksDetachesTheirWaitsBeforeDestroyingFrames) {
    Event never;
    EventLoop loop;
    std::vector<std::string> reports;
    loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    Task<> parent = detail::spawn(loop, await_a_child(&never), "parent", std::source_location::current());
    loop.run_until([&] { return parent.state()->waiting_on() != nullptr; });
    loop.close();
    EXPECT_TRUE(parent.cancelled());
    EXPECT_EQ(reports.size(), 2u);  // "Task was destroyed but it is pending!", parent and child
}

// A run_coroutine_threadsafe future whose task the closing loop abandons ends (broken_promise:
// the loop drops the done callback unrun) instead of waiting forever.
TEST(LoopManual, RunCoroutineThreadsafeFutureEndsWhenTheLoopClosesUnderIt) {
    Event never;
    EventLoop loop;
    loop.set_exception_handler([](EventLoop&, const ExceptionContext&) {});
    std::future<void> result = run_coroutine_threadsafe(wait_for_event(&never), loop);
    loop.run_until([&] { return !loop.tasks().empty(); });
    loop.close();
    ASSERT_EQ(result.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_THROW(result.get(), std::future_error);
}

// L7 / test_base_events.py::BaseEventLoopTests::test_run_forever_pre_stopped: stop() before
// run_forever() makes it run exactly one tick (without blocking).
TEST(LoopManual, StopBeforeRunForeverRunsOneTick) {
    EventLoop loop;
    Log log;
    loop.call_soon([&] {
        log.push_back("queued");
        loop.call_soon([&] { log.push_back("next-tick"); });
    });
    loop.stop();
    loop.run_forever();
    EXPECT_EQ(log, (Log{"queued"}));
    EXPECT_FALSE(loop.is_running());
    loop.close();
}

// L7 / test_events.py::EventLoopTestsMixin::test_run_until_complete_stopped: run_until on a
// stopped loop throws; the loop is usable afterwards.
TEST(LoopManual, RunUntilOnAStoppedLoopThrows) {
    EventLoop loop;
    loop.stop();
    EXPECT_THROW(loop.run_until([] { return false; }), std::logic_error);
    EXPECT_FALSE(loop.is_running());
    bool ran = false;
    loop.call_soon([&] { ran = true; });
    loop.run_until([&] { return ran; });
    EXPECT_TRUE(ran);
    loop.close();
}

namespace {
Coro<int> await_future(Future<int>* f) {
    int v = co_await *f;
    co_return v;
}
}  // namespace

// L7 / test_tasks.py::BaseTaskTests::test_stop_while_run_in_complete: stop() during run_until
// throws "Event loop stopped before Future completed."; the task stays pending and can be
// cancelled later.
TEST(LoopManual, StopDuringRunUntilLeavesTheTaskPending) {
    EventLoop loop;
    Future<int> never(loop);
    Task<int> t;
    loop.call_soon([&] { t = create_task(await_future(&never)); });
    loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
    try {
        loop.run_until([&] { return t && t.done(); });
        ADD_FAILURE() << "run_until did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "Event loop stopped before Future completed.");
    }
    ASSERT_TRUE(t);
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(loop.is_running());
    t.cancel();
    loop.run_until([&] { return t.done(); });
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(never.cancelled());  // T4: cancelling the task cancelled the future it awaited
    t = {};
    loop.close();
}

// L7: a stop() in the very tick that completes the run is spent with it: the run succeeds, and
// the next run is not stopped at once (it used to throw before its first tick).
TEST(LoopManual, StopInTheTickThatCompletesTheRunDoesNotLeakIntoTheNextRun) {
    EventLoop loop;
    bool first = false;
    loop.call_soon([&] {
        first = true;
        loop.stop();
    });
    EXPECT_NO_THROW(loop.run_until([&] { return first; }));
    bool second = false;
    loop.call_soon([&] { loop.call_soon([&] { second = true; }); });
    EXPECT_NO_THROW(loop.run_until([&] { return second; }));
    EXPECT_TRUE(second);
    loop.close();
}

namespace {
Coro<int> stops_its_loop_and_returns() {
    get_running_loop().stop();
    co_return 42;
}
Coro<int> returns_two() { co_return 2; }
}  // namespace

TEST(LoopManual, RunnerSurvivesAMainThatStopsTheLoopAsItReturns) {
    Runner runner;
    EXPECT_EQ(runner.run(stops_its_loop_and_returns()), 42);
    EXPECT_EQ(runner.run(returns_two()), 2);
    runner.close();
}

// L9 / test_events.py::EventLoopTestsMixin::test_close: after close(), scheduling and running
// throw; close() is idempotent.
TEST(LoopManual, ClosedLoopRejectsSchedulingAndRunning) {
    EventLoop loop;
    EXPECT_FALSE(loop.is_closed());
    loop.close();
    EXPECT_TRUE(loop.is_closed());
    EXPECT_THROW(loop.call_soon([] {}), std::logic_error);
    EXPECT_THROW(loop.call_later(1s, [] {}), std::logic_error);
    EXPECT_THROW(loop.call_at(loop.time(), [] {}), std::logic_error);
    EXPECT_THROW(loop.run_forever(), std::logic_error);
    EXPECT_THROW(loop.run_until([] { return true; }), std::logic_error);
    EXPECT_NO_THROW(loop.close());
    EXPECT_TRUE(loop.is_closed());
}

// L9: "After close, run_*, call_soon*, ... raise" — call_soon_threadsafe included.
TEST(LoopManual, ClosedLoopRejectsCallSoonThreadsafe) {
    EventLoop loop;
    loop.close();
    EXPECT_THROW(loop.call_soon_threadsafe([] {}), std::logic_error);
}

// A tick-end callback that a closing loop never runs is destroyed, not run (what it holds is let
// go); a closed loop refuses new ones.
// L9: close() drops pending timer callbacks; their captures may cancel other timers as they go
// (a connection that cancels its idle timer in its destructor). The walk over the timer heap
// used to go on over nodes that removal had freed (ASan: heap-use-after-free).
TEST(LoopManual, DroppedTimerCallbacksMayCancelOtherTimersAsTheyGo) {
    struct Conn {
        TimerHandle idle;
        ~Conn() { idle.cancel(); }
    };
    auto main_coro = []() -> Coro<> {
        EventLoop& loop = get_running_loop();
        auto conn = std::make_shared<Conn>();
        conn->idle = loop.call_later(60s, [] {});
        TimerHandle sooner = loop.call_later(30s, [conn] {});  // dropped first, with conn
        (void)sooner;
        co_return;
    };
    corio::run(main_coro());
}

TEST(LoopManual, ClosingDropsTickEndCallbacksUnrun) {
    EventLoop loop;
    bool ran = false;
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    loop.call_at_tick_end([&ran, held = std::move(token)] { ran = true; });
    EXPECT_FALSE(watch.expired());
    loop.close();
    EXPECT_FALSE(ran);
    EXPECT_TRUE(watch.expired());
    EXPECT_THROW(loop.call_at_tick_end([] {}), std::logic_error);
}

// One scheduled outside a tick runs at the end of the next one, which does not wait for I/O.
TEST(LoopManual, ATickEndCallbackMadeBetweenTicksRunsInTheNextTick) {
    EventLoop loop;
    bool ran = false;
    loop.call_at_tick_end([&ran] { ran = true; });
    loop.run_until([&ran] { return ran; });  // would block in the poll if it waited for I/O
    EXPECT_TRUE(ran);
    loop.close();
}

// L9 / test_events.py::EventLoopTestsMixin::test_close_running_event_loop.
CORIO_TEST(Loop, ClosingTheRunningLoopThrows) {
    EventLoop& loop = get_running_loop();
    EXPECT_THROW(loop.close(), std::logic_error);
    EXPECT_FALSE(loop.is_closed());
    co_await sleep(0s);  // still running fine
}

// L8 / test_base_events.py::RunningLoopTests::test_running_loop_within_a_loop,
// test_events.py::test_run_until_complete_nesting: a running loop cannot be run again, and no
// other loop can run on this thread while it runs.
CORIO_TEST(Loop, RunningALoopInsideARunningLoopThrows) {
    EventLoop& loop = get_running_loop();
    try {
        loop.run_forever();
        ADD_FAILURE() << "run_forever inside itself did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "This event loop is already running");
    }
    EXPECT_THROW(loop.run_until([] { return true; }), std::logic_error);
    {
        EventLoop other;
        try {
            other.run_forever();
            ADD_FAILURE() << "another loop ran inside a running loop";
        } catch (const std::logic_error& e) {
            EXPECT_STREQ(e.what(), "Cannot run the event loop while another loop is running");
        }
        EXPECT_THROW(other.run_until([] { return true; }), std::logic_error);
        EXPECT_FALSE(other.is_running());
    }
    EXPECT_TRUE(loop.is_running());
    EXPECT_EQ(&get_running_loop(), &loop);
    co_await sleep(0s);  // the outer loop is unharmed
}

// get_running_loop() outside any loop throws.
TEST(LoopManual, GetRunningLoopOutsideALoopThrows) {
    EXPECT_THROW(get_running_loop(), std::logic_error);
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
