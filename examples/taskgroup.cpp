// Seed "TaskGroup": structured concurrency, and except* with ExceptionGroup.
//   async with asyncio.TaskGroup() as tg:
//       task_a = tg.create_task(fetch_data("a")); task_b = tg.create_task(fetch_data("b"))
//   print(task_a.result(), task_b.result())
//   try:
//       async with asyncio.TaskGroup() as tg:
//           tg.create_task(may_fail_a()); tg.create_task(may_fail_b())
//   except* ValueError as eg: ...
//   except* TypeError as eg: ...
#include <corio/corio.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::string> fetch_data(std::string key) {
    co_await corio::sleep(50ms);
    co_return "data-" + key;
}

// Both fail in the same tick (the group reacts to a failure a tick later, as asyncio's does), so
// the group holds both errors, one for each except* clause. (With real-time sleeps of different
// lengths, which one the group would cancel first would depend on the machine's load.)
corio::Coro<> may_fail_a() {
    co_await corio::sleep(0s);
    throw std::invalid_argument("bad input in a");
}
corio::Coro<> may_fail_b() {
    co_await corio::sleep(0s);
    throw std::domain_error("out of domain in b");
}

corio::Coro<int> main_coro() {
    corio::Task<std::string> task_a, task_b;
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        task_a = tg.create_task(fetch_data("a"));
        task_b = tg.create_task(fetch_data("b"));
        co_return;
    });
    // Both tasks are done here.
    std::cout << task_a.result() << " " << task_b.result() << "\n";

    // except* ValueError / except* TypeError: each clause takes its part of the group (split),
    // the next clause sees what is left, and what no clause took propagates.
    int invalid_seen = 0, domain_seen = 0;
    try {
        co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
            tg.create_task(may_fail_a());
            tg.create_task(may_fail_b());
            co_return;
        });
    } catch (const corio::ExceptionGroup& eg) {
        auto [invalid, not_invalid] = eg.split<std::invalid_argument>();  // except* ValueError
        if (invalid)
            for (auto& e : invalid->exceptions()) std::cout << "invalid_argument: " << corio::describe(e) << "\n", ++invalid_seen;
        if (not_invalid) {
            auto [domain, unhandled] = not_invalid->split<std::domain_error>();  // except* TypeError
            if (domain)
                for (auto& e : domain->exceptions()) std::cout << "domain_error: " << corio::describe(e) << "\n", ++domain_seen;
            if (unhandled) throw *unhandled;  // as except* re-raises what no clause matched
        }
    }
    co_return task_a.result() == "data-a" && invalid_seen == 1 && domain_seen == 1 ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
