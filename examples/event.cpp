// Seed "Event -- notify waiting coroutines".
//   async def waiter(): await event.wait(); print("event fired")
//   async def trigger(): event.set()
#include <corio/corio.hpp>

#include <iostream>

using namespace std::chrono_literals;

int fired = 0;

corio::Coro<> waiter(corio::Event* event, int id) {
    co_await event->wait();
    std::cout << "waiter " << id << ": event fired\n";
    ++fired;
}

corio::Coro<> trigger(corio::Event* event) {
    co_await corio::sleep(10ms);
    event->set();
}

corio::Coro<int> main_coro() {
    corio::Event event;
    co_await corio::gather(waiter(&event, 1), waiter(&event, 2), trigger(&event));
    co_return fired == 2 ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
