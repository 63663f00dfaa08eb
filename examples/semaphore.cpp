// Seed "Semaphore -- limit concurrent operations" (and the tip "avoid creating too many tasks:
// use semaphores to limit concurrency").
//   sem = asyncio.Semaphore(10)
//   async def rate_limited_fetch(url): async with sem: return await http_get(url)
#include <corio/corio.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int in_flight = 0;
int most_in_flight = 0;

corio::Coro<std::string> http_get(std::string url) {
    ++in_flight;
    most_in_flight = std::max(most_in_flight, in_flight);
    co_await corio::sleep(10ms);
    --in_flight;
    co_return "body of " + url;
}

corio::Coro<std::string> rate_limited_fetch(corio::Semaphore* sem, std::string url) {
    auto held = co_await sem->acquire();  // async with sem:
    co_return co_await http_get(url);
}

corio::Coro<int> main_coro() {
    corio::Semaphore sem(10);
    std::vector<corio::Coro<std::string>> fetches;
    for (int i = 0; i < 100; ++i) fetches.push_back(rate_limited_fetch(&sem, "https://example.test/" + std::to_string(i)));
    auto bodies = co_await corio::gather(std::move(fetches));
    std::cout << bodies.size() << " fetched, at most " << most_in_flight << " at once\n";
    co_return (bodies.size() == 100 && most_in_flight == 10) ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
