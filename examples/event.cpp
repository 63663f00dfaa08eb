// Seed "Event -- notify waiting coroutines".
//   async def waiter(): await event.wait(); print("event fired")
//   async def trigger(): event.set()
#include <corio/corio.hpp>

#include <iostream>
#include <vector>

using namespace std::chrono_literals;

std::vector<int> fired;  // in the order the waiters woke: the order they began to wait

corio::Coro<> waiter(corio::Event* event, int id) {
    co_await event->wait();
    std::cout << "waiter " << id << ": event fired\n";
    fired.push_back(id);
}

corio::Coro<> trigger(corio::Event* event) {
    co_await corio::sleep(10ms);
    event->set();
}

corio::Coro<int> main_coro() {
    corio::Event event;
    co_await corio::gather(waiter(&event, 1), waiter(&event, 2), trigger(&event));
    co_return fired == std::vector<int>{1, 2} ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
