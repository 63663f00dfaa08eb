// Runner::run and corio::run end as asyncio's run_until_complete does: main's first done
// callback stops the loop, and it runs a tick after main finished, so that the whole of that
// tick runs (what main's last step woke, started or scheduled) before the run returns and the
// shutdown cancels what is left. They used to return at once, and cancelled that work instead.
// Each expectation was checked against Python 3.11's asyncio.Runner.
#include <corio/corio.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

using namespace corio;

namespace {

using Log = std::vector<std::string>;

Coro<> waits_for(std::shared_ptr<Event> ev, Log* log) {
    try {
        auto waiting = ev->wait();
        co_await std::move(waiting);
        log->push_back("worker done");
    } catch (const CancelledError&) {
        log->push_back("worker cancelled");
        throw;
    }
}

Coro<> sets_the_event_and_returns(Log* log) {
    auto ev = std::make_shared<Event>();
    Task<> worker = create_task(waits_for(ev, log));
    auto tick = sleep(std::chrono::seconds(0));
    co_await std::move(tick);
    ev->set();
}

Coro<> child(Log* log) {
    log->push_back("child started");
    try {
        auto waiting = sleep(std::chrono::hours(1));
        co_await std::move(waiting);
    } catch (const CancelledError&) {
        log->push_back("child cancelled");
        throw;
    }
}

Coro<> starts_a_child_and_returns(Log* log) {
    Task<> started = create_task(child(log));
    co_return;
}

Coro<> schedules_and_returns(Log* log) {
    EventLoop& loop = get_running_loop();
    loop.call_soon([log, &loop] {
        log->push_back("callback");
        loop.call_soon([log] { log->push_back("its callback, a tick later"); });
    });
    Future<> done = loop.create_future();
    done.add_done_callback([log] { log->push_back("done callback"); });
    done.set_result();
    co_return;
}

}  // namespace

// A worker that main's last step woke finishes its work (it was cancelled at the event).
TEST(RunnerLastTick, WhatMainsLastStepWokeRunsBeforeTheShutdown) {
    Log log;
    corio::run(sets_the_event_and_returns(&log));
    EXPECT_EQ(log, (Log{"worker done"}));
}

// A task main started as it returned takes its first step, then the shutdown cancels it (it was
// cancelled before its first step: its body never ran).
TEST(RunnerLastTick, ATaskMainStartedAsItReturnedRunsItsFirstStepThenIsCancelled) {
    Log log;
    corio::run(starts_a_child_and_returns(&log));
    EXPECT_EQ(log, (Log{"child started", "child cancelled"}));
}

// Callbacks main scheduled have run when Runner::run returns; what they schedule waits for the
// next run (or the close), as exactly one tick runs.
TEST(RunnerLastTick, OneMoreTickRunsBeforeRunReturns) {
    Log log;
    Runner runner(RunOptions{.handle_sigint = false});
    runner.run(schedules_and_returns(&log));
    EXPECT_EQ(log, (Log{"callback", "done callback"}));
    runner.close();
    EXPECT_EQ(log, (Log{"callback", "done callback", "its callback, a tick later"}));
}

namespace {
Coro<> stops_the_loop_and_returns(Log* log) {
    EventLoop& loop = get_running_loop();
    loop.call_soon([log] { log->push_back("callback"); });
    loop.stop();
    co_return;
}
}  // namespace

// A stop() in main's last tick ends the run after that tick, as asyncio's loop stops before
// main's done callback runs: no extra tick (what main scheduled runs in the next run, or the close).
TEST(RunnerLastTick, AStopInMainsLastTickEndsTheRunThere) {
    Log log;
    Runner runner(RunOptions{.handle_sigint = false});
    runner.run(stops_the_loop_and_returns(&log));
    EXPECT_EQ(log, (Log{}));
    runner.close();
    EXPECT_EQ(log, (Log{"callback"}));
}
