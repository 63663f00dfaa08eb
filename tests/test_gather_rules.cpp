// Smaller promises of gather, Outcome, sleep and wait (docs/reference/gather.md, sleep.md,
// wait.md): which failure gather rethrows when several failed before it waited, that its
// children start without the gather being awaited, gather() of nothing, a default Outcome; a
// zero/negative sleep and a past sleep_until yield exactly one tick, a sleep's deadline is fixed
// when sleep() is called; wait() lists a task given twice once; cancelling the task awaiting
// gather reaches the children at once.
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "task_support.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

// Fails after `n` ticks.
Coro<int> fail_after_ticks(int n, std::string what, Log* log) {
    for (int i = 0; i < n; ++i) co_await sleep(0s);
    log->push_back(what);
    throw std::runtime_error(what);
}

Coro<int> logs_and_returns(int v, Log* log) {
    log->push_back(corio_test::str("started ", v));
    co_await sleep(0s);
    log->push_back(corio_test::str("finished ", v));
    co_return v;
}

Coro<> yield_ticks(int n) {
    for (int i = 0; i < n; ++i) co_await sleep(0s);
}

Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}

template <class A>
Coro<std::string> failure_of(A aw) {
    std::string out = "no failure";
    try {
        co_await std::move(aw);
    } catch (const std::exception& e) {
        out = e.what();
    }
    co_return out;
}

}  // namespace

// gather.md:33-35: children that failed before gather waited: the first in argument order is rethrown.
CORIO_TEST(GatherRules, FailuresBeforeTheWaitRethrowTheFirstInArgumentOrder) {
    Log failed;
    auto gathering = gather(fail_after_ticks(2, "A", &failed), fail_after_ticks(1, "B", &failed));
    Coro<> letting_both_fail = yield_ticks(4);
    co_await std::move(letting_both_fail);
    EXPECT_EQ(failed, (Log{"B", "A"}));  // both done, B first, before gather is awaited
    Coro<std::string> awaiting = failure_of(std::move(gathering));
    std::string rethrown = co_await std::move(awaiting);
    EXPECT_EQ(rethrown, "A");
}

// gather.md:32-34: by contrast, while gather waits, the first failure by completion order wins.
CORIO_TEST(GatherRules, FailuresWhileWaitingRethrowTheFirstToComplete) {
    Log failed;
    auto gathering = gather(fail_after_ticks(2, "A", &failed), fail_after_ticks(1, "B", &failed));
    Coro<std::string> awaiting = failure_of(std::move(gathering));
    std::string rethrown = co_await std::move(awaiting);
    EXPECT_EQ(rethrown, "B");
}

// gather.md:29-30: the Coros become tasks at the call: they run with the gather never awaited.
// Not a forgotten coroutine either: debug mode reports nothing (asyncio's gather returns a future).
CORIO_TEST(GatherRules, ChildrenRunThoughTheGatherIsNeverAwaited) {
    corio_test::CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    Log log;
    {
        auto gathering = gather(logs_and_returns(1, &log), logs_and_returns(2, &log));
        (void)gathering;  // dropped unawaited
    }
    Coro<> waiting = yield_ticks(3);
    co_await std::move(waiting);
    EXPECT_EQ(log, (Log{"started 1", "started 2", "finished 1", "finished 2"}));
    get_running_loop().set_debug(false);
    EXPECT_TRUE(captured.reports.empty()) << corio_test::all_messages(captured.reports);
}

// gather.md:29: they start before gather is awaited (the call alone scheduled them).
CORIO_TEST(GatherRules, ChildrenStartBeforeTheGatherIsAwaited) {
    Log log;
    auto gathering = gather(logs_and_returns(1, &log), logs_and_returns(2, &log));
    EXPECT_TRUE(log.empty());  // create_task never runs a step inline
    Coro<> waiting = yield_ticks(1);
    co_await std::move(waiting);
    EXPECT_EQ(log, (Log{"started 1", "started 2"}));
    auto results = co_await std::move(gathering);
    EXPECT_EQ(results, std::make_tuple(1, 2));
}

// gather.md:47-48: gather() with no argument returns an empty tuple at once (no tick).
CORIO_TEST(GatherRules, NoArgumentsGiveAnEmptyTupleAtOnce) {
    bool other_ran = false;
    get_running_loop().call_soon([&other_ran] { other_ran = true; });
    auto gathering = gather();
    auto results = co_await std::move(gathering);
    static_assert(std::is_same_v<decltype(results), std::tuple<>>);
    EXPECT_FALSE(other_ran);
    auto outcomes_gathering = gather(return_exceptions);
    auto outcomes = co_await std::move(outcomes_gathering);
    static_assert(std::is_same_v<decltype(outcomes), std::tuple<>>);
    EXPECT_FALSE(other_ran);
    Coro<> waiting = yield_ticks(1);
    co_await std::move(waiting);
    EXPECT_TRUE(other_ran);
}

// gather.md:78-79: Outcome<T>() holds neither a value nor an error.
TEST(OutcomeDefaults, DefaultOutcomeHoldsNeither) {
    Outcome<int> o;
    EXPECT_FALSE(o.has_value());
    EXPECT_FALSE(bool(o));
    EXPECT_EQ(o.error(), nullptr);
    Outcome<std::string> s;
    EXPECT_FALSE(s.has_value());
    EXPECT_EQ(s.error(), nullptr);
}

// gather.md:79: Outcome<void>() is a success.
TEST(OutcomeDefaults, DefaultVoidOutcomeIsASuccess) {
    Outcome<void> o;
    EXPECT_TRUE(o.has_value());
    EXPECT_TRUE(bool(o));
    EXPECT_EQ(o.error(), nullptr);
    EXPECT_NO_THROW(o.value());
    Outcome<void> failed(std::make_exception_ptr(std::runtime_error("x")));
    EXPECT_FALSE(failed.has_value());
    EXPECT_THROW(failed.value(), std::runtime_error);
}

namespace {
// Queues "before" (which queues "after" for the following tick), awaits `aw`, logs "resumed".
template <class A>
Coro<Log> one_tick_of(A aw) {
    Log log;
    EventLoop& loop = get_running_loop();
    loop.call_soon([&log, &loop] {
        log.push_back("before");
        loop.call_soon([&log] { log.push_back("after"); });
    });
    co_await std::move(aw);
    log.push_back("resumed");
    Coro<> next = yield_ticks(2);
    co_await std::move(next);
    co_return log;
}
}  // namespace

// sleep.md:12-13: sleep(-1s) / sleep(0s) yield exactly one tick (ready work first, its follow-up after).
CORIO_TEST(SleepRules, NegativeDelayYieldsExactlyOneTick) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    auto napping = sleep(-1s);
    Coro<Log> running = one_tick_of(std::move(napping));
    Log log = co_await std::move(running);
    EXPECT_EQ(log, (Log{"before", "resumed", "after"}));
    EXPECT_EQ(clock.now(), t0);
    auto zero = sleep(0s);
    Coro<Log> running0 = one_tick_of(std::move(zero));
    Log log0 = co_await std::move(running0);
    EXPECT_EQ(log0, (Log{"before", "resumed", "after"}));
}

// sleep.md:32: sleep_until a deadline already past yields for exactly one tick, just the same.
CORIO_TEST(SleepRules, PastSleepUntilYieldsExactlyOneTick) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    auto napping = sleep_until(get_running_loop().time() - 5s);
    Coro<Log> running = one_tick_of(std::move(napping));
    Log log = co_await std::move(running);
    EXPECT_EQ(log, (Log{"before", "resumed", "after"}));
    EXPECT_EQ(clock.now(), t0);
}

// sleep.md:21: the deadline is fixed when sleep() is called: sleep(1s), await sleep(2s), await it: 2 s.
CORIO_TEST(SleepRules, DeadlineIsFixedWhenSleepIsCalledNotWhenAwaited) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    auto one_second = sleep(1s);
    auto two_seconds = sleep(2s);
    co_await std::move(two_seconds);
    EXPECT_EQ(clock.seconds_since(t0), 2.0);
    co_await std::move(one_second);
    EXPECT_EQ(clock.seconds_since(t0), 2.0);
    auto three_seconds = sleep(3s);  // due at 5 s
    clock.advance(1s);               // 1 s passes before it is awaited
    co_await std::move(three_seconds);
    EXPECT_EQ(clock.seconds_since(t0), 5.0);
}

// wait.md:47-48: a task given twice is listed once, at its first place (all completed).
CORIO_TEST(WaitRules, TaskGivenTwiceIsListedOnceAtItsFirstPlace) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(2s, 2));
    auto waiting = wait(std::vector<Task<int>>{b, a, b, a});
    auto result = co_await std::move(waiting);
    auto& [done, pending] = result;
    CO_ASSERT_EQ(done.size(), 2u);
    EXPECT_TRUE(done[0] == b);
    EXPECT_TRUE(done[1] == a);
    EXPECT_TRUE(pending.empty());
}

// wait.md:47-48: the same in `pending` when the wait ends early (first completed).
CORIO_TEST(WaitRules, TaskGivenTwiceIsPendingOnce) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(2s, 2));
    Task<int> c = create_task(value_after(3s, 3));
    auto waiting = wait(std::vector<Task<int>>{c, a, b, c, a, b}, std::nullopt, ReturnWhen::FirstCompleted);
    auto result = co_await std::move(waiting);
    auto& [done, pending] = result;
    CO_ASSERT_EQ(done.size(), 1u);
    EXPECT_TRUE(done[0] == a);
    CO_ASSERT_EQ(pending.size(), 2u);
    EXPECT_TRUE(pending[0] == c);
    EXPECT_TRUE(pending[1] == b);
    auto rest = gather(b, c);
    co_await std::move(rest);
}

// ---------------------------------------------------------------------------------------------
// Cancelling the task that awaits gather (gather.md "Cancellation"; asyncio-rules T4, G7)
// ---------------------------------------------------------------------------------------------

namespace {

Coro<> gathers_one(Task<> child) {
    Coro<std::tuple<std::monostate>> all = gather(child);
    (void)co_await std::move(all);
}

Coro<int> commits_when_given(Future<int> given, Log* log) {
    int v = co_await given;
    log->push_back("committed");
    co_return v;
}

Coro<> gathers_one_int(Task<int> child) {
    Coro<std::tuple<int>> all = gather(child);
    (void)co_await std::move(all);
}

Coro<> gathers_one_within(Task<> child, Clock::duration limit) {
    Coro<std::tuple<std::monostate>> all = gather(child);
    (void)co_await wait_for(std::move(all), limit);
}

}  // namespace

// asyncio: task.cancel() cancels its _fut_waiter, the gathering future, whose cancel() cancels
// every unfinished child in the same call: the child's cancelling() is 1 at once (it was 0 until
// the gathering task's next step).
CORIO_TEST(GatherCancelled, CancelReachesTheChildrenAtOnce) {
    corio::testing::MockClock clock;
    Task<> child = create_task(corio_test::nap(10s));
    Task<> gathering = create_task(gathers_one(child));
    auto settle = sleep(10ms);
    co_await std::move(settle);
    EXPECT_TRUE(gathering.cancel("stop"));
    EXPECT_EQ(child.cancelling(), 1);
    Coro<std::string> ended = corio_test::outcome(gathering);
    EXPECT_EQ(co_await std::move(ended), "CancelledError");
    EXPECT_TRUE(child.cancelled());
}

// A child whose awaited result came in the same tick as the cancel is cancelled all the same,
// as in asyncio (python3: c.cancelled() True, log []); it used to run on and commit.
CORIO_TEST(GatherCancelled, ChildWokenInTheSameTickIsCancelledToo) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Future<int> given = loop.create_future<int>();
    Log log;
    Task<int> child = create_task(commits_when_given(given, &log));
    Task<> gathering = create_task(gathers_one_int(child));
    auto settle = sleep(10ms);
    co_await std::move(settle);
    Handle both = loop.call_soon([given, gathering]() mutable {
        given.set_result(1);
        AnyTask(gathering).cancel();
    });
    Coro<std::string> ended = corio_test::outcome(gathering);
    EXPECT_EQ(co_await std::move(ended), "CancelledError");
    EXPECT_TRUE(child.cancelled());
    EXPECT_EQ(log, Log{});
}

// The same through wait_for: the cancel passes through the timeout to the gather's children.
CORIO_TEST(GatherCancelled, CancelThroughWaitForReachesTheChildrenAtOnce) {
    corio::testing::MockClock clock;
    Task<> child = create_task(corio_test::nap(10s));
    Task<> gathering = create_task(gathers_one_within(child, 5s));
    auto settle = sleep(10ms);
    co_await std::move(settle);
    gathering.cancel();
    EXPECT_EQ(child.cancelling(), 1);
    Coro<std::string> ended = corio_test::outcome(gathering);
    EXPECT_EQ(co_await std::move(ended), "CancelledError");
}

namespace {
// Catches its cancellation, unwinds for a tick, then lets the same message go on.
Coro<> rethrows_its_cancel_a_tick_later() {
    std::string message;
    bool cancelled = false;
    try {
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError& e) {
        cancelled = true;
        message = e.what();
    }
    auto tick = sleep(0s);
    co_await std::move(tick);
    if (cancelled) throw CancelledError(message);
}

Coro<std::string> message_gather_ends_with(bool with_outcomes) {
    try {
        if (with_outcomes) {
            Coro<std::tuple<Outcome<void>>> all = gather(return_exceptions, rethrows_its_cancel_a_tick_later());
            (void)co_await std::move(all);
        } else {
            Coro<std::tuple<std::monostate>> all = gather(rethrows_its_cancel_a_tick_later());
            (void)co_await std::move(all);
        }
    } catch (const CancelledError& e) {
        co_return e.what();
    }
    co_return "<no CancelledError>";
}

Coro<int> swallows_its_cancel_and_returns() {
    try {
        auto s = sleep(1h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        co_return 5;
    }
    co_return 0;
}

// Gathers a child that swallows its cancel, then waits on `ev`; logs the messages it sees.
Coro<> gathers_then_waits(Event* ev, Log* log) {
    try {
        Coro<std::tuple<int>> all = gather(swallows_its_cancel_and_returns());
        (void)co_await std::move(all);
    } catch (const CancelledError& e) {
        log->push_back(std::string("gather: ") + e.what());
    }
    try {
        auto waiting = ev->wait();
        co_await std::move(waiting);
    } catch (const CancelledError& e) {
        log->push_back(std::string("event: ") + e.what());
    }
}

Coro<> one_tick() {
    auto tick = sleep(0s);
    co_await std::move(tick);
}

}  // namespace

// Two cancels before the child ends: gather raises the child's own CancelledError, which has
// the first message (T11: the second found the child's wait cancelled already); python3: 'm1',
// with and without return_exceptions. It raised the last message passed on.
CORIO_TEST(GatherCancelled, TwoCancelsEndWithTheChildsOwnCancelledError) {
    for (bool with_outcomes : {false, true}) {
        Task<std::string> gathering = create_task(message_gather_ends_with(with_outcomes));
        for (int i = 0; i < 2; ++i) {
            Coro<> tick = one_tick();
            co_await std::move(tick);
        }
        gathering.cancel("m1");
        gathering.cancel("m2");
        std::string message = co_await gathering;
        EXPECT_EQ(message, "m1") << "return_exceptions: " << with_outcomes;
    }
}

// A cancel passed on to the children, then another after the gather was woken: the passed-on
// one is settled on that way out too, so a later cancel of the task keeps its own message
// (python3: the event wait ends with 'third'; it ended with 'second').
CORIO_TEST(GatherCancelled, ALaterCancelAfterTheGatherKeepsItsOwnMessage) {
    Event ev;
    Log log;
    Task<> t = create_task(gathers_then_waits(&ev, &log));
    for (int i = 0; i < 2; ++i) {
        Coro<> tick = one_tick();
        co_await std::move(tick);
    }
    t.cancel("first");
    Coro<> swallowed = one_tick();  // the child swallows it and returns; t's wake-up is queued
    co_await std::move(swallowed);
    t.cancel("second");
    for (int i = 0; i < 3; ++i) {
        Coro<> tick = one_tick();
        co_await std::move(tick);
    }
    t.cancel("third");
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
    CO_ASSERT_EQ(log.size(), 2u);
    EXPECT_EQ(log[1], "event: third");
}

namespace {
Coro<int> fails_after_a_tick(std::string what) {
    Coro<> tick = one_tick();
    co_await std::move(tick);
    throw std::runtime_error(what);
}

Coro<int> sleeps_long() {
    auto s = sleep(10s);
    co_await std::move(s);
    co_return 0;
}

// "ok", "CancelledError:<message>" or the error's what().
Coro<std::string> how_it_ends(Coro<std::tuple<int, int>> gathering) {
    try {
        (void)co_await std::move(gathering);
    } catch (const CancelledError& e) {
        co_return std::string("CancelledError:") + e.what();
    } catch (const std::exception& e) {
        co_return e.what();
    }
    co_return "ok";
}

// Gathers `a` and `b`; `a`'s done callback (added after the gather began) cancels this task.
Coro<std::string> gathers_until_a_callback_cancels(Task<int> a, Task<int> b) {
    AnyTask me = current_task();
    Coro<std::tuple<int, int>> both = gather(a, b);
    a.add_done_callback([me]() mutable { me.cancel("late"); });
    Coro<std::string> ending = how_it_ends(std::move(both));
    co_return co_await std::move(ending);
}

// Cancelled, fails a tick later (the first to be cancelled is the second child, which ends at once).
Coro<int> fails_a_tick_after_its_cancel() {
    bool cancelled = false;
    try {
        auto s = sleep(10s);
        co_await std::move(s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        Coro<> tick = one_tick();
        co_await std::move(tick);
        throw std::runtime_error("c0");
    }
    co_return 0;
}

Coro<std::string> gathers_a_slow_failer_and_a_sleeper() {
    Coro<std::tuple<int, int>> both = gather(fails_a_tick_after_its_cancel(), sleeps_long());
    Coro<std::string> ending = how_it_ends(std::move(both));
    co_return co_await std::move(ending);
}
}  // namespace

// A child failed, which made gather's result, and the task's cancel came only then (a done
// callback of that child): asyncio's gather was done, and the task's pending cancel replaces
// its error (python3: CancelledError('late')). corio rethrew the child's error: the cancel was lost.
CORIO_TEST(GatherCancelled, ACancelAfterAChildFailedReplacesTheFailure) {
    Task<int> a = create_task(fails_after_a_tick("A"));
    Task<int> b = create_task(sleeps_long());
    Task<std::string> gathering = create_task(gathers_until_a_callback_cancels(a, b));
    std::string r = co_await gathering;
    EXPECT_EQ(r, "CancelledError:late");
    EXPECT_TRUE(b.cancelled());  // corio's gather leaves no child behind
}

// The child that ended first decides, in completion order: the second child, cancelled at once,
// before the first one's error a tick later (python3: CancelledError('m')). corio looked at the
// children in argument order and rethrew the first one's error.
CORIO_TEST(GatherCancelled, TheChildThatEndedFirstDecides) {
    corio::testing::MockClock clock;
    Task<std::string> gathering = create_task(gathers_a_slow_failer_and_a_sleeper());
    for (int i = 0; i < 2; ++i) {
        Coro<> tick = one_tick();
        co_await std::move(tick);
    }
    gathering.cancel("m");
    std::string r = co_await gathering;
    EXPECT_EQ(r, "CancelledError:m");
}

namespace {
// Turns its cancellation into an error, as a job that reports its interruption does.
Coro<int> converts_its_cancel() {
    try {
        auto s = sleep(10s);
        co_await std::move(s);
    } catch (const CancelledError&) {
        throw std::runtime_error("aborted");
    }
    co_return 0;
}

Coro<int> handles_what_gather_rethrows() {
    Coro<std::tuple<int, int>> both = gather(converts_its_cancel(), converts_its_cancel());
    try {
        (void)co_await std::move(both);
    } catch (const std::runtime_error&) {
        co_return 5;
    }
    co_return 0;
}

// The same with the cancel pending when the gather is awaited.
Coro<int> cancels_itself_then_handles_what_gather_rethrows() {
    Coro<std::tuple<int>> one = gather(converts_its_cancel());
    Coro<> tick = one_tick();
    co_await std::move(tick);
    current_task().cancel("self");
    try {
        (void)co_await std::move(one);
    } catch (const std::runtime_error&) {
        co_return 5;
    }
    co_return 0;
}
}  // namespace

// Debug mode: the cancel gather passed on came back as a child's error, not as a CancelledError,
// so the task that handles that error and returns swallowed nothing (python3 -X dev is quiet).
// It was reported, gather having counted the cancel delivered before it knew; and, with the
// cancel pending when gather was awaited, having passed it on without counting it.
CORIO_TEST(GatherCancelled, ACancelThatCameBackAsAChildsErrorIsNoSwallowedCancellation) {
    corio_test::CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    Task<int> parent = create_task(handles_what_gather_rethrows(), "parent");
    for (int i = 0; i < 2; ++i) {
        Coro<> tick = one_tick();
        co_await std::move(tick);
    }
    parent.cancel();
    const int handled = co_await parent;
    Task<int> pending = create_task(cancels_itself_then_handles_what_gather_rethrows(), "pending");
    const int handled_pending = co_await pending;
    get_running_loop().set_debug(false);
    EXPECT_EQ(handled, 5);
    EXPECT_EQ(handled_pending, 5);
    EXPECT_TRUE(captured.reports.empty()) << corio_test::all_messages(captured.reports);
}
