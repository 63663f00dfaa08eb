// Debug mode (asyncio-rules.md D1, D2, D5): slow steps and callbacks, coroutines never
// awaited, swallowed cancellations, tasks still running after their cancellation; and the call
// graphs of pending tasks (capture and print).
// Ports CPython's test_base_events.py (slow callbacks) and test_graph.py; each test names the
// CPython test (or the asyncio-rules.md rule) it pins.
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <chrono>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::capture_reports;
using corio_test::cleans_up_then_rethrows;
using corio_test::still_running_reports;
using corio_test::swallowing_worker;

// ---------------------------------------------------------------------------------------------
// Debug mode (D1, D2, D5)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> busy_step(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
    }
    co_return;
}

Coro<> debug_main(std::vector<ExceptionContext>* out) {
    capture_reports(out);
    Task<> t = create_task(busy_step(30ms), "sloth");
    co_await t;
}
}  // namespace

// D2 / test_base_events.py::BaseEventLoopTests::test_log_slow_callbacks: in debug mode a task
// step longer than slow_callback_duration is reported with the task's name. (The one test that
// needs real time: the step busy-waits; only the report is asserted, never a duration.)
TEST(RunDebug, SlowStepIsReportedWithTheTaskName) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    options.slow_callback_duration = 10ms;
    corio::run(debug_main(&reports), std::move(options));
    bool found = false;
    for (const auto& r : reports) {
        if (r.task_name != "sloth") continue;
        found = true;
        EXPECT_NE(r.message.find("Executing <Task sloth> took"), std::string::npos) << r.message;
        EXPECT_TRUE(r.location.has_value());
    }
    EXPECT_TRUE(found) << all_messages(reports);
}

namespace {
struct MarksItRan {
    bool* ran;
    void operator()() const { *ran = true; }
};
}  // namespace

// D2: a plain callback (call_soon, call_later) that holds the loop is reported too, as asyncio
// reports every slow handle. A zero threshold makes every callback slow: no real time needed.
TEST(RunDebug, SlowCallbackIsReported) {
    std::vector<ExceptionContext> reports;
    auto main_coro = [](std::vector<ExceptionContext>* out) -> Coro<> {
        capture_reports(out);
        EventLoop& loop = get_running_loop();
        loop.set_debug(true);
        loop.slow_callback_duration = std::chrono::nanoseconds(0);
        bool ran = false;
        loop.call_soon(MarksItRan{&ran});
        co_await sleep(0s);
        loop.set_debug(false);
        if (!ran) throw std::logic_error("the callback did not run");
    };
    corio::run(main_coro(&reports));
    bool found = false;
    // Named by the callable's type, as asyncio names the handle's function (it said "<Handle>").
    for (const auto& r : reports)
        found = found || (r.message.starts_with("Executing <Handle ") && r.message.find("MarksItRan> took") != std::string::npos);
    EXPECT_TRUE(found) << all_messages(reports);
}

// D2: debug mode off, no slow-step report.
TEST(RunDebug, NoSlowStepReportWithoutDebug) {
    std::vector<ExceptionContext> reports;
    auto main_coro = [](std::vector<ExceptionContext>* out) -> Coro<> {
        get_running_loop().set_debug(false);
        get_running_loop().slow_callback_duration = 10ms;
        Coro<> inner = debug_main(out);
        co_await std::move(inner);
    };
    corio::run(main_coro(&reports));
    EXPECT_TRUE(reports.empty()) << all_messages(reports);
}

namespace {
Coro<int> forgotten_coroutine() { co_return 1; }

Coro<> forget_one(std::vector<ExceptionContext>* out, bool debug) {
    capture_reports(out);
    get_running_loop().set_debug(debug);
    {
        Coro<int> c = forgotten_coroutine();
    }
    co_await sleep(0s);
}
}  // namespace

// D5 / API.md: a Coro destroyed without ever running is reported in debug mode ("coroutine ...
// was never awaited").
TEST(RunDebug, NeverAwaitedCoroIsReportedInDebugMode) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    corio::run(forget_one(&reports, true), std::move(options));
    std::vector<std::string> never_awaited;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) never_awaited.push_back(r.message);
    EXPECT_EQ(never_awaited.size(), 1u) << all_messages(reports);
}

namespace {
Coro<> forget_a_thread_call(std::vector<ExceptionContext>* out, int* calls) {
    capture_reports(out);
    {
        auto forgotten = to_thread([calls] { ++*calls; });  // never runs: never awaited
    }
    auto awaited = to_thread([calls] { ++*calls; });
    co_await std::move(awaited);
}
}  // namespace

// D5 for to_thread, which starts when awaited as asyncio.to_thread (a coroutine) does: one
// dropped unawaited never runs, and debug mode says so as asyncio's RuntimeWarning does
// ("coroutine 'to_thread' was never awaited").
TEST(RunDebug, NeverAwaitedToThreadIsReportedInDebugMode) {
    std::vector<ExceptionContext> reports;
    int calls = 0;
    RunOptions options;
    options.debug = true;
    corio::run(forget_a_thread_call(&reports, &calls), std::move(options));
    EXPECT_EQ(calls, 1);
    std::vector<std::string> never_awaited;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) never_awaited.push_back(r.message);
    EXPECT_EQ(never_awaited, (std::vector<std::string>{"coroutine 'to_thread' was never awaited"})) << all_messages(reports);
}

// D5 / API.md: the report names the coroutine function ("coroutine 'forgotten_coroutine' ...").
TEST(RunDebug, NeverAwaitedReportNamesTheCoroutineFunction) {
    std::vector<ExceptionContext> reports;
    RunOptions options;
    options.debug = true;
    corio::run(forget_one(&reports, true), std::move(options));
    std::vector<std::string> never_awaited;
    for (const auto& r : reports)
        if (r.message.find("was never awaited") != std::string::npos) never_awaited.push_back(r.message);
    ASSERT_EQ(never_awaited.size(), 1u) << all_messages(reports);
    EXPECT_NE(never_awaited[0].find("forgotten_coroutine"), std::string::npos) << never_awaited[0];
}

// D5: without debug mode, no report.
TEST(RunDebug, NeverAwaitedCoroIsSilentWithoutDebug) {
    std::vector<ExceptionContext> reports;
    corio::run(forget_one(&reports, false));
    EXPECT_TRUE(reports.empty()) << all_messages(reports);
}

namespace {
Coro<int> handles_its_cancel_and_returns_5() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        current_task().uncancel();
    }
    co_return 5;
}
Coro<int> awaits_a_child() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    int v = co_await child;
    co_return v;
}
Coro<int> swallows_its_cancel() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
    }
    co_return 1;
}
Coro<> cancel_and_collect(std::vector<ExceptionContext>* out, Coro<int> (*body)(), std::string name) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(body(), name);
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
}
std::size_t swallowed_reports(const std::vector<ExceptionContext>& reports, const std::string& task) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("Task " + task + " returned normally although") != std::string::npos) ++n;
    return n;
}
}  // namespace

// D4: a task that catches its CancelledError and returns normally is reported in debug mode.
TEST(RunDebug, SwallowedCancellationIsReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_collect(&reports, swallows_its_cancel, "stubborn"));
    EXPECT_EQ(swallowed_reports(reports, "stubborn"), 1u) << all_messages(reports);
}

// D4: cancelling a task passes the cancel on to the task it awaits (T4); when that child handles
// it and returns a value, nothing was thrown into the parent, and the parent is not reported.
TEST(RunDebug, ACancelPassedOnToAChildThatHandledItIsNotASwallowedCancellation) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_collect(&reports, awaits_a_child, "parent"));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 0u) << all_messages(reports);
}

namespace {
// The task cancels itself while running: the cancel waits for its next await, which is on a
// child; the child handles it and returns a value.
Coro<int> cancels_itself_then_awaits_a_child() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    co_await sleep(0s);
    co_await sleep(0s);  // the child sleeps
    current_task().cancel();
    int v = co_await child;
    co_return v;
}
Coro<> run_and_collect(std::vector<ExceptionContext>* out, Coro<int> (*body)(), std::string name) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(body(), name);
    int v = co_await t;
    EXPECT_EQ(v, 5);
}
}  // namespace

// D4: a pending cancel passed on to the child at the await that delivers it counts as passed
// on, as one that arrives while the task already waits: the child handled it.
TEST(RunDebug, APendingCancelPassedOnAtTheNextAwaitIsNotASwallowedCancellation) {
    std::vector<ExceptionContext> reports;
    corio::run(run_and_collect(&reports, cancels_itself_then_awaits_a_child, "parent"));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 0u) << all_messages(reports);
}

namespace {
// The first cancel goes to the child, which handles it; the second reaches this frame's own
// sleep, and is swallowed here.
Coro<int> child_absorbs_then_swallows() {
    Task<int> child = create_task(handles_its_cancel_and_returns_5(), "child");
    int v = co_await child;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
    }
    co_return v;
}
// With `take_back`, the first request is taken back (uncancel()) while the child still has it.
Coro<> cancel_twice_and_collect(std::vector<ExceptionContext>* out, bool take_back = false) {
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<int> t = create_task(child_absorbs_then_swallows(), "parent");
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();  // passed on to the child
    if (take_back) t.uncancel();
    co_await sleep(0s);
    co_await sleep(0s);
    t.cancel();  // delivered into the parent's sleep
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
}
}  // namespace

// D4: a cancel the child absorbed does not hide a later one the parent swallows itself.
TEST(RunDebug, ASwallowAfterACancelAChildHandledIsStillReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_twice_and_collect(&reports));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 1u) << all_messages(reports);
    // It counts only the request this frame swallowed, not the one the child handled.
    EXPECT_NE(all_messages(reports).find("requested 1 time(s)"), std::string::npos) << all_messages(reports);
}

// The same, with the first request taken back (uncancel()) while the child still had it: the
// child's handling of it absorbed nothing of this task's, and the later swallow is reported.
TEST(RunDebug, ASwallowAfterARequestTakenBackWhileAChildHadItIsStillReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_twice_and_collect(&reports, true));
    EXPECT_EQ(swallowed_reports(reports, "parent"), 1u) << all_messages(reports);
}

namespace {
// Takes its cancellation back, as asyncio's uncancel() allows, and goes on working.
Coro<> uncancels_and_goes_on() {
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        current_task().uncancel();
    }
    co_await sleep(5s);
}

Coro<> cancel_and_watch(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    bool stop = false;
    Task<> worker = create_task(swallowing_worker(&stop), "worker");
    Task<> honest = create_task(cleans_up_then_rethrows(500ms), "honest");
    Task<> forgiven = create_task(uncancels_and_goes_on(), "forgiven");
    co_await sleep(0s);
    for (Task<>* t : {&worker, &honest, &forgiven}) t->cancel();
    co_await sleep(3s);  // virtual time
    EXPECT_FALSE(worker.done());
    EXPECT_TRUE(honest.cancelled());
    EXPECT_EQ(still_running_reports(*out, "worker"), 1u) << all_messages(*out);
    stop = true;
    worker.cancel();
    try {
        co_await worker;
    } catch (const CancelledError&) {
    }
    co_await forgiven;
}
}  // namespace

// D4: a task still running a second after a CancelledError of its own cancellation was thrown
// into it, without uncancel(), is reported with where it waits: a worker loop that swallows it
// never returns, so the report at its return would never come. A clean-up that takes time and
// then rethrows, or an uncancel(), is not reported.
TEST(RunDebug, ATaskStillRunningAfterItsCancellationIsReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_and_watch(&reports));
    EXPECT_EQ(still_running_reports(reports, "worker"), 1u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "honest"), 0u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "forgiven"), 0u) << all_messages(reports);
    for (const auto& r : reports)
        if (r.message.find("Task worker is still running") != std::string::npos) {
            EXPECT_NE(r.call_graph.find("swallowing_worker"), std::string::npos) << r.call_graph;
        }
}

namespace {
Coro<> cancel_then_turn_debug_off(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    bool stop = false;
    Task<> worker = create_task(swallowing_worker(&stop), "worker");
    co_await sleep(0s);
    worker.cancel();
    co_await sleep(0s);  // the CancelledError is thrown into it: the check is armed
    get_running_loop().set_debug(false);
    co_await sleep(3s);  // virtual time
    stop = true;
    worker.cancel();
    try {
        co_await worker;
    } catch (const CancelledError&) {
    }
}
}  // namespace

// The check armed while debug mode was on does not report once it is turned off (found by the
// introspection and debug hunt).
TEST(RunDebug, NoStillRunningReportAfterDebugModeIsTurnedOff) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_then_turn_debug_off(&reports));
    EXPECT_EQ(still_running_reports(reports, "worker"), 0u) << all_messages(reports);
}

namespace {
// A child that takes three seconds to wind down once cancelled, then lets the cancellation go.
Coro<> slow_to_wind_down() { return cleans_up_then_rethrows(3s); }
Coro<> waits_in_a_group() {
    auto body = [](TaskGroup& g) -> Coro<> {
        g.create_task(slow_to_wind_down(), "slow child");
        co_await sleep(10s);
    };
    Coro<> grouping = task_group(body);
    co_await std::move(grouping);
}
Coro<> waits_in_gather() {
    Task<> a = create_task(slow_to_wind_down(), "slow child");
    auto gathering = gather(a);
    co_await std::move(gathering);
}
Coro<> cancel_the_waiting_parents(std::vector<ExceptionContext>* out) {
    corio::testing::MockClock clock;
    capture_reports(out);
    get_running_loop().set_debug(true);
    Task<> in_group = create_task(waits_in_a_group(), "group parent");
    Task<> in_gather = create_task(waits_in_gather(), "gather parent");
    co_await sleep(0s);
    in_group.cancel();
    in_gather.cancel();
    for (Task<>* t : {&in_group, &in_gather}) {
        try {
            co_await *t;
        } catch (const CancelledError&) {
        }
    }
}
}  // namespace

// D4: a task whose CancelledError corio's own machinery caught to wait for its children (a
// TaskGroup's exit, gather) is not taken for one that swallowed it, however long they take.
TEST(RunDebug, AParentWaitingForItsChildrenToWindDownIsNotReported) {
    std::vector<ExceptionContext> reports;
    corio::run(cancel_the_waiting_parents(&reports));
    EXPECT_EQ(still_running_reports(reports, "group parent"), 0u) << all_messages(reports);
    EXPECT_EQ(still_running_reports(reports, "gather parent"), 0u) << all_messages(reports);
    // The slow children are cleaning up themselves, for three seconds: they may be reported.
}

// ---------------------------------------------------------------------------------------------
// Call graphs (API.md Debug mode; asyncio.capture_call_graph / print_call_graph)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> graph_leaf(Future<>* f) { co_await *f; }
Coro<> graph_middle(Future<>* f) {
    Coro<> c = graph_leaf(f);
    co_await std::move(c);
}
Coro<> graph_outer(Future<>* f) {
    Coro<> c = graph_middle(f);
    co_await std::move(c);
}

const TaskInfo* find_task(const std::vector<TaskInfo>& graph, const std::string& name) {
    for (const auto& t : graph)
        if (t.name == name) return &t;
    return nullptr;
}
}  // namespace

// capture_call_graph(): every pending task of the loop with its await chain (one frame per
// coroutine, outermost first) and, when the loop keeps task statistics (debug mode,
// introspection), where it was created; the running task is "running"; done tasks are not
// listed.
CORIO_TEST(CallGraph, CaptureShowsEveryPendingTaskWithItsAwaitChain) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    loop.keep_task_stats(true);
    Task<> t = create_task(graph_outer(&f), "walker");
    loop.keep_task_stats(false);
    bool debug = loop.get_debug();  // CORIO_DEBUG=1 keeps statistics too
    loop.set_debug(false);
    Task<> plain = create_task(graph_outer(&f), "plain");
    loop.set_debug(debug);
    co_await sleep(0s);
    std::vector<TaskInfo> graph = capture_call_graph();
    EXPECT_EQ(graph.size(), 3u);
    const TaskInfo* walker = find_task(graph, "walker");
    CO_ASSERT_TRUE(walker != nullptr);
    EXPECT_EQ(walker->state, "pending");
    EXPECT_NE(walker->created_file.find("test_debug_mode.cpp"), std::string::npos) << walker->created_file;
    EXPECT_GT(walker->created_line, 0u);
    // Like asyncio's _source_traceback, the creation site costs a task nothing unless asked for.
    const TaskInfo* unrecorded = find_task(graph, "plain");
    CO_ASSERT_TRUE(unrecorded != nullptr);
    EXPECT_EQ(unrecorded->created_file, "");
    EXPECT_EQ(unrecorded->created_line, 0u);
    EXPECT_EQ(unrecorded->frames.size(), 3u);
    EXPECT_EQ(walker->cancelling, 0);
    EXPECT_EQ(walker->frames.size(), 3u);
    const TaskInfo* me = find_task(graph, current_task().name());
    CO_ASSERT_TRUE(me != nullptr);
    EXPECT_EQ(me->state, "running");

    t.cancel();  // cancelling() shows in the graph until the task has handled it
    std::vector<TaskInfo> cancelling = capture_call_graph();
    const TaskInfo* w2 = find_task(cancelling, "walker");
    CO_ASSERT_TRUE(w2 != nullptr);
    EXPECT_EQ(w2->cancelling, 1);
    bool cancelled = false;
    try {
        co_await t;
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    plain.cancel();
    auto settled = wait(std::vector<Task<>>{plain});
    co_await std::move(settled);
    std::vector<TaskInfo> after = capture_call_graph();
    EXPECT_EQ(find_task(after, "walker"), nullptr);
    EXPECT_EQ(after.size(), 1u);
}

// capture_call_graph() names each frame by its coroutine function, with its file and line.
CORIO_TEST(CallGraph, CaptureNamesEachFrameByItsCoroutineFunction) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "walker");
    co_await sleep(0s);
    std::vector<TaskInfo> graph = capture_call_graph();
    const TaskInfo* walker = find_task(graph, "walker");
    CO_ASSERT_TRUE(walker != nullptr);
    CO_ASSERT_EQ(walker->frames.size(), 3u);
    EXPECT_NE(walker->frames[0].function.find("graph_outer"), std::string::npos) << walker->frames[0].function;
    EXPECT_NE(walker->frames[1].function.find("graph_middle"), std::string::npos) << walker->frames[1].function;
    EXPECT_NE(walker->frames[2].function.find("graph_leaf"), std::string::npos) << walker->frames[2].function;
    EXPECT_NE(walker->frames[2].file.find("test_debug_mode.cpp"), std::string::npos) << walker->frames[2].file;
    EXPECT_GT(walker->frames[2].line, 0u);
    f.set_result();
    co_await t;
}

// print_call_graph(out): the same as text, each task by name.
CORIO_TEST(CallGraph, PrintShowsEveryPendingTaskByName) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "printed-walker");
    co_await sleep(0s);
    std::ostringstream out;
    print_call_graph(out);
    const std::string text = out.str();
    EXPECT_NE(text.find("printed-walker"), std::string::npos) << text;
    EXPECT_NE(text.find(current_task().name()), std::string::npos) << text;
    f.set_result();
    co_await t;
    std::ostringstream out2;
    print_call_graph(out2);
    EXPECT_EQ(out2.str().find("printed-walker"), std::string::npos) << out2.str();
}

// print_call_graph(out): each frame by its coroutine function's name, outermost first.
CORIO_TEST(CallGraph, PrintShowsTheFunctionOfEachFrameInOrder) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(graph_outer(&f), "printed-walker");
    co_await sleep(0s);
    std::ostringstream out;
    print_call_graph(out);
    const std::string text = out.str();
    const auto task_pos = text.find("printed-walker");
    const auto outer_pos = text.find("graph_outer", task_pos == std::string::npos ? 0 : task_pos);
    const auto middle_pos = text.find("graph_middle", outer_pos == std::string::npos ? 0 : outer_pos);
    const auto leaf_pos = text.find("graph_leaf", middle_pos == std::string::npos ? 0 : middle_pos);
    EXPECT_NE(task_pos, std::string::npos) << text;
    EXPECT_NE(outer_pos, std::string::npos) << text;
    EXPECT_NE(middle_pos, std::string::npos) << text;
    EXPECT_NE(leaf_pos, std::string::npos) << text;
    f.set_result();
    co_await t;
}
