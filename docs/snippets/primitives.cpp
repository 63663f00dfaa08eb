// Semaphore, Lock, Event, Condition: the seeds' four snippets.
#include <corio/corio.hpp>

#include <algorithm>
#include <deque>
#include <iostream>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int in_flight = 0, most_in_flight = 0;

corio::Coro<std::string> http_get(std::string url) {
    most_in_flight = std::max(most_in_flight, ++in_flight);
    co_await corio::sleep(5ms);
    --in_flight;
    co_return "body of " + url;
}

// [semaphore]
corio::Semaphore sem(10);

corio::Coro<std::string> rate_limited_fetch(std::string url) {
    auto permit = co_await sem.acquire();  // async with sem:
    co_return co_await http_get(url);      //     (the permit is released when `permit` goes)
}
// [end semaphore]

// [lock]
corio::Lock lock;
std::map<std::string, int> state{{"counter", 0}};

corio::Coro<> update_shared_state() {
    auto held = co_await lock.acquire();  // async with lock:
    int seen = state["counter"];          //     only one coroutine at a time
    co_await corio::sleep(1ms);           //     others run here: without the lock they would
    state["counter"] = seen + 1;          //     read the same value, and updates would be lost
}
// [end lock]

int fired = 0;

// [event]
corio::Event event;

corio::Coro<> waiter() {
    co_await event.wait();
    std::cout << "event fired\n";
    ++fired;
}

corio::Coro<> trigger() {
    event.set();
    co_return;
}
// [end event]

// [condition]
corio::Condition condition;
std::deque<int> queue;

corio::Coro<int> consumer() {
    auto held = co_await condition.acquire();                    // async with condition:
    co_await condition.wait_for([] { return !queue.empty(); });  //     await condition.wait_for(...)
    int item = queue.back();                                     //     item = queue.pop()
    queue.pop_back();
    co_return item;
}

corio::Coro<> producer(int item) {
    auto held = co_await condition.acquire();
    queue.push_back(item);
    condition.notify();
}
// [end condition]

corio::Coro<int> main_coro() {
    std::vector<corio::Coro<std::string>> fetches;
    for (int i = 0; i < 50; ++i) fetches.push_back(rate_limited_fetch("https://example.test/" + std::to_string(i)));
    std::vector<std::string> bodies = co_await corio::gather(std::move(fetches));

    std::vector<corio::Coro<>> updates;
    for (int i = 0; i < 20; ++i) updates.push_back(update_shared_state());
    co_await corio::gather(std::move(updates));

    co_await corio::gather(waiter(), waiter(), trigger());

    auto items = co_await corio::gather(consumer(), producer(7));
    int item = std::get<0>(items);

    std::cout << bodies.size() << " fetched, at most " << most_in_flight << " at once; counter "
              << state["counter"] << "; " << fired << " waiters woke; consumed " << item << '\n';
    bool ok = bodies.size() == 50 && most_in_flight == 10 && state["counter"] == 20 && fired == 2 && item == 7;
    co_return ok ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
