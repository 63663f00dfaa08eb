// The event loop run by hand (L7 - L9): stop/run_forever/run_until on a loop the test makes,
// re-entrancy (a running loop cannot be run again, nor another loop inside it), and closing
// (pending tasks' frames, run_coroutine_threadsafe futures, timers and tick-end callbacks
// dropped; a closed loop refuses work). The ready queue, timers, errors, threads and virtual
// time are in test_loop.cpp.
// Ports CPython's Lib/test/test_asyncio/test_base_events.py and test_events.py; each test names
// the CPython test (or the asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include <future>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

}  // namespace

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

namespace {
// A periodic object that keeps the handles of its own callbacks, which capture it.
struct KeepsItsOwnHandles {
    TimerHandle timer;
    Handle soon;
};

// Arms a timer as it is destroyed (a connection's capture that re-arms something as it goes).
struct ArmsATimerAsItGoes {
    EventLoop* loop;
    std::shared_ptr<int> sentinel;
    ArmsATimerAsItGoes(EventLoop* l, std::shared_ptr<int> s) : loop(l), sentinel(std::move(s)) {}
    ArmsATimerAsItGoes(ArmsATimerAsItGoes&& o) noexcept
        : loop(std::exchange(o.loop, nullptr)), sentinel(std::move(o.sentinel)) {}
    ~ArmsATimerAsItGoes() {
        if (!loop) return;
        try {
            loop->call_later(1h, [s = sentinel] {});
        } catch (...) {
        }
    }
    void operator()() const {}
};
}  // namespace

// Closing drops a timer and a callback that never ran together with their captures, also when
// the captures hold the nodes' own handles: that cycle was never freed (asyncio's close and gc
// free it).
TEST(LoopClose, CallbacksWhoseCapturesHoldTheirOwnHandlesAreFreed) {
    std::weak_ptr<KeepsItsOwnHandles> gone;
    {
        EventLoop loop;
        auto object = std::make_shared<KeepsItsOwnHandles>();
        gone = object;
        object->timer = loop.call_later(1h, [object] {});
        object->soon = loop.call_soon([object] {});
        object.reset();
        loop.close();
    }
    EXPECT_TRUE(gone.expired());
}

// A timer armed while close() drops what never ran (by a dropped callback's capture, as it is
// destroyed) is dropped too; it leaked.
TEST(LoopClose, ATimerArmedWhileTheLoopClosesIsDropped) {
    auto sentinel = std::make_shared<int>(0);
    {
        EventLoop loop;
        loop.call_soon(ArmsATimerAsItGoes(&loop, sentinel));
        loop.close();
    }
    EXPECT_EQ(sentinel.use_count(), 1) << "the timer armed during close() kept its captures";
}

namespace {
Coro<> sleep_long() { co_await sleep(1h); }

// A generator whose next() runs a TaskGroup with two children still running.
AsyncGenerator<int> group_in_a_generator(bool* started) {
    co_await task_group([started](TaskGroup& g) -> Coro<> {
        g.create_task(sleep_long());
        g.create_task(sleep_long());
        co_await sleep(0ms);
        *started = true;
        co_await sleep(1h);
    });
    co_yield 1;
}

Coro<> end_at_once(bool* ended) {
    *ended = true;
    co_return;
}

// The same with a child that ends at once: the loop stops before the group hears of its end.
AsyncGenerator<int> group_with_a_quick_child(bool* ended) {
    co_await task_group([ended](TaskGroup& g) -> Coro<> {
        g.create_task(sleep_long());
        g.create_task(end_at_once(ended));
        co_await sleep(1h);
    });
    co_yield 1;
}

Coro<> consume_a_local(bool* started) {
    AsyncGenerator<int> numbers = group_in_a_generator(started);
    auto first = numbers.next();
    co_await std::move(first);
}

Coro<> consume(AsyncGenerator<int>* numbers) {
    auto first = numbers->next();
    co_await std::move(first);
}
}  // namespace

// A TaskGroup in an async generator's frame outlived its children when the loop closed: the
// loop abandoned (and freed) them first, then destroyed the generator, whose group walked its
// list of freed children (ASan: heap-use-after-free; found by the TaskGroup hunt).
TEST(LoopClose, ATaskGroupInAGeneratorOutlivesItsAbandonedChildren) {
    bool started = false;
    std::vector<std::string> reports;
    {
        EventLoop loop;
        loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
        Task<> consumer = detail::spawn(loop, consume_a_local(&started), "consumer", std::source_location::current());
        loop.run_until([&] { return started; });
        loop.close();
        EXPECT_TRUE(consumer.cancelled());
    }
    EXPECT_EQ(reports.size(), 3u);  // "Task was destroyed but it is pending!": the consumer, two children
}

// The same with the generator held outside the task, and dropped after close().
TEST(LoopClose, AGeneratorDroppedAfterCloseLetsGoOfItsGroupsAbandonedChildren) {
    bool started = false;
    std::optional<AsyncGenerator<int>> numbers;
    {
        EventLoop loop;
        loop.set_exception_handler([](EventLoop&, const ExceptionContext&) {});
        numbers.emplace(group_in_a_generator(&started));
        Task<> consumer = detail::spawn(loop, consume(&*numbers), "consumer", std::source_location::current());
        loop.run_until([&] { return started; });
        loop.close();
        numbers.reset();
    }
    EXPECT_TRUE(started);
}

// A child that ended just before the loop stopped is no longer pending, so the close does not
// abandon it: the callback that would tell its group was dropped, which freed the child while
// the group (in a generator dropped later) still listed it (found by the review of the fix
// above).
TEST(LoopClose, AChildThatEndedJustBeforeTheCloseLeavesItsGroupToo) {
    bool ended = false;
    std::optional<AsyncGenerator<int>> numbers;
    {
        EventLoop loop;
        loop.set_exception_handler([](EventLoop&, const ExceptionContext&) {});
        numbers.emplace(group_with_a_quick_child(&ended));
        Task<> consumer = detail::spawn(loop, consume(&*numbers), "consumer", std::source_location::current());
        loop.run_until([&] { return ended; });
        loop.close();
        numbers.reset();
    }
    EXPECT_TRUE(ended);
}
