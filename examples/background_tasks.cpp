// Seed pitfall 3, "fire-and-forget tasks without references": the background-tasks set.
//   background_tasks: set[asyncio.Task] = set()
//   def schedule(coro): task = asyncio.create_task(coro); background_tasks.add(task)
//                       task.add_done_callback(background_tasks.discard)
// In corio the loop keeps every task alive until it finishes, so a dropped handle never loses a
// task; the set is still the way to keep track of them (and to await them at the end).
#include <corio/corio.hpp>

#include <iostream>
#include <list>
#include <vector>

using namespace std::chrono_literals;

int finished = 0;

corio::Coro<> job(int i) {
    co_await corio::sleep(std::chrono::milliseconds(10 * i));
    ++finished;
}

std::list<corio::Task<>> background_tasks;

void schedule(corio::Coro<> coro) {
    auto task = corio::create_task(std::move(coro));
    auto where = background_tasks.insert(background_tasks.end(), task);
    task.add_done_callback([where] { background_tasks.erase(where); });
}

corio::Coro<int> main_coro() {
    for (int i = 1; i <= 5; ++i) schedule(job(i));
    // A task whose handle is dropped at once still runs to completion.
    (void)corio::create_task(job(1));
    std::cout << "scheduled, tracking " << background_tasks.size() << " tasks\n";
    // The set is how they are awaited at the end (a copy: done callbacks shrink the set).
    std::vector<corio::Task<>> pending(background_tasks.begin(), background_tasks.end());
    auto all_done = corio::gather(std::move(pending));
    co_await std::move(all_done);
    // The dropped one (10 ms) is not in the set: almost always done by now, but waited for, so
    // that a loaded machine cannot make it late.
    for (int i = 0; i < 5000 && finished < 6; ++i) co_await corio::sleep(1ms);
    std::cout << "finished " << finished << " jobs\n";
    co_return finished == 6 ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
