"""Travel scenarios: booking a flight, renting a car and hiring movers."""

from __future__ import annotations

from sumlab.demo.scenarios import (
    BIG_PRICES,
    CITIES,
    DATES,
    FIRST_NAMES,
    GOODBYE,
    PHONE_SMALL_TALK,
    PHONES,
    SMALL_TALK,
    SURNAMES,
    WEEKDAYS,
    Pool,
    Scenario,
    any_order,
    outcome,
    pool,
    step,
)

AIRLINES = pool("Sky Air; Northern Airways; Blue Jet; Coastal Airlines")
DEPARTURES = pool("6:15 am; 7:40 am; 9:05 am; 11:20 am; 1:45 pm; 3:10 pm; 5:50 pm; 8:25 pm")
FARES = Pool(tuple(f"${amount}" for amount in range(180, 900, 35)))
FLIGHT = Scenario(
    topic="flight booking",
    slots={
        "origin": CITIES,
        "destination": CITIES,
        "via": CITIES,
        "date": DATES,
        "time": DEPARTURES,
        "price": FARES,
        "first": FIRST_NAMES,
        "surname": SURNAMES,
        "agent": FIRST_NAMES,
        "airline": AIRLINES,
        "phone": PHONES,
    },
    opening=(
        step(
            "A: Good morning, {airline}. How can I help?"
            "|C: I'd like to book a flight from {origin} to {destination} on {date}.",
            "C: Hi, I need a plane ticket to {destination} for {date}.|A: Certainly. Where will you be flying from?"
            "|C: From {origin}.",
            "C: Hello. Are there any flights from {origin} to {destination} on {date}?|A: I'll have a look for you.",
            "A: Travel desk, this is {agent}.|C: Hi {agent}. I want to fly from {origin} to {destination} on {date}.",
        ),
        PHONE_SMALL_TALK,
        any_order(
            step(
                "A: One way or return?|C: Just one way, please.",
                "A: Is that a return ticket?|C: No, one way.",
                chance=0.5,
            ),
            step(
                "A: Economy or business class?|C: Economy is fine.", "C: I'd like an economy seat, please.", chance=0.4
            ),
            step(
                "A: Just a moment while I search.|C: Sure, take your time.",
                "A: One moment, the system is a bit slow today.|C: No problem.",
                chance=0.5,
            ),
        ),
    ),
    outcomes=(
        outcome(
            "booked",
            [
                step(
                    "A: There's a direct flight at {time} for {price}.|C: That sounds good. I'll take it.",
                    "A: I have a seat on the {time} flight. It's {price}.|C: Perfect, please book it.",
                    "A: The best option is the {time} departure, {price} including taxes.|C: OK, book that one, please.",
                ),
                step(
                    "A: Can I have your full name as it appears on your passport?|C: {first} {surname}.",
                    "A: And the passenger's name?|C: {first} {surname}.",
                ),
                step(
                    "A: Will you be checking any bags?|C: Just one suitcase.|A: That's included in the price.",
                    "A: Any checked baggage?|C: No, only hand luggage.",
                    chance=0.5,
                ),
                step("A: How would you like to pay?|C: By credit card, please.", chance=0.5),
                step(
                    "C: Could I have a window seat?|A: Yes, I've given you a window seat.",
                    chance=0.3,
                    note="{C} gets a window seat.",
                ),
            ],
            [
                "{C} books a flight from {origin} to {destination} on {date}. It leaves at {time} and costs {price}.",
                "{A} books {C} on the {time} flight from {origin} to {destination} on {date} for {price}.",
            ],
        ),
        outcome(
            "connecting",
            [
                step(
                    "A: The direct flights on {date} are all full, I'm afraid. There's one with a stop in {via} at "
                    "{time}, for {price}.|C: A stopover isn't ideal, but OK, I'll take it.",
                    "A: Sorry, there's no direct flight left that day. I can get you there through {via}, leaving at "
                    "{time}. It's {price}.|C: Fine, let's do that.",
                ),
                step(
                    "A: Can I have your full name, please?|C: {first} {surname}.",
                    "A: The passenger's name?|C: {first} {surname}.",
                ),
                step(
                    "C: How long is the stopover?|A: About two hours.",
                    "C: Do I need to collect my bags in {via}?|A: No, they go straight through.",
                    chance=0.6,
                ),
            ],
            [
                "{C} wants to fly from {origin} to {destination} on {date}. The direct flights are full, so {C} books a "
                "flight via {via} at {time} for {price}.",
                "{A} can't find a direct flight to {destination} on {date}, so {C} takes the {time} connection through "
                "{via} costing {price}.",
            ],
        ),
        outcome(
            "waitlist",
            [
                step(
                    "A: I'm afraid all flights that day are fully booked. I can put you on the waiting list."
                    "|C: Yes, please do that.",
                    "A: Unfortunately there are no seats left on {date}. Shall I add you to the waiting list?"
                    "|C: Yes, please.",
                ),
                step(
                    "A: What's the best number to reach you?|C: {phone}.", "C: You can call me on {phone}.|A: Got it."
                ),
            ],
            [
                "{C} wants to fly from {origin} to {destination} on {date}, but the flights are full, so {A} puts {C} on "
                "the waiting list.",
                "There are no seats from {origin} to {destination} on {date}. {C} joins the waiting list and leaves the "
                "number {phone}.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

CARS = pool("compact car; family sedan; small hatchback; station wagon; seven-seat van; convertible; pickup truck")
RENTAL_DAYS = pool("2; 3; 4; 5; 6; 7; 10")
DAILY_RATES = Pool(tuple(f"${amount}" for amount in range(29, 99, 4)))
CAR_RENTAL = Scenario(
    topic="car rental",
    slots={
        "car": CARS,
        "alt_car": CARS,
        "days": RENTAL_DAYS,
        "day": WEEKDAYS,
        "rate": DAILY_RATES,
        "insurance": pool("$9; $12; $15"),
        "first": FIRST_NAMES,
        "surname": SURNAMES,
    },
    derive=lambda values: {"total": f"${int(values['days']) * int(values['rate'][1:])}"},
    opening=(
        step(
            "C: Hi, I'd like to rent a car for {days} days.|A: Sure. What kind of car are you looking for?"
            "|C: A {car}, if you have one.",
            "A: Good morning, how can I help you?|C: Hello. I need a {car} for {days} days.",
            "C: Hello, do you have a {car} available?|A: For how long?|C: {days} days.",
            "A: Welcome. Are you picking up a car or booking one?|C: Booking. I'm looking for a {car} for {days} days.",
        ),
        SMALL_TALK,
        step(
            "A: And when would you like to pick it up?|C: On {day}, in the morning.",
            "C: I'd pick it up on {day}.",
            "A: From which day?|C: From {day}.",
        ),
        step("A: Do you have a valid driving licence?|C: Yes, here it is.", chance=0.4),
    ),
    outcomes=(
        outcome(
            "booked",
            [
                step(
                    "A: We have a {car} available. It's {rate} a day, so {total} for {days} days."
                    "|C: That's fine. Please book it.",
                    "A: Yes, a {car} is free from {day}. At {rate} a day, that comes to {total}.|C: Great, I'll take it.",
                ),
                step(
                    "A: Can I have your name for the booking?|C: {first} {surname}.",
                    "A: Whose name is the booking under?|C: Mine. {first} {surname}.",
                ),
                step(
                    "C: Is the mileage unlimited?|A: Yes, it is.",
                    "A: Will you return it here?|C: Yes, to this office.",
                    chance=0.5,
                ),
                step(
                    "A: Would you like full insurance for an extra {insurance} a day?|C: Yes, I think I'd better.",
                    chance=0.3,
                    note="{C} also takes full insurance for {insurance} a day.",
                ),
            ],
            [
                "{C} rents a {car} for {days} days from {day} at {rate} a day, {total} in total.",
                "{A} books a {car} for {C} from {day} for {days} days. It costs {total}.",
            ],
        ),
        outcome(
            "alternative",
            [
                step(
                    "A: I'm sorry, we have no {car} left. We do have a {alt_car} for {rate} a day."
                    "|C: OK, the {alt_car} will do.",
                    "A: All our {car}s are out this week, I'm afraid. How about a {alt_car}? It's {rate} a day."
                    "|C: Fine, I'll take the {alt_car}.",
                ),
                step(
                    "C: Is it big enough for four people?|A: Yes, and there's plenty of room for luggage.", chance=0.5
                ),
                step("A: Can I have your name for the booking?|C: {first} {surname}."),
            ],
            [
                "{C} wants to rent a {car}, but none are left, so {C} takes a {alt_car} for {days} days from {day} at "
                "{rate} a day.",
                "There is no {car} available, so {A} offers {C} a {alt_car} at {rate} a day instead, and {C} accepts.",
            ],
        ),
        outcome(
            "declined",
            [
                step(
                    "A: A {car} would be {rate} a day, {total} in total."
                    "|C: Hmm, that's more than I expected. I think I'll leave it, thanks.",
                    "A: For {days} days that's {total}, at {rate} a day."
                    "|C: That's too expensive for me. I'll look around a bit more.",
                ),
                step("A: We have cheaper cars, but not for {day}.|C: No, thanks anyway.", chance=0.5),
            ],
            [
                "{C} asks about renting a {car} for {days} days, but {total} is too expensive, so {C} decides not to book.",
                "{A} quotes {C} {total} for a {car} for {days} days from {day}. {C} finds it too expensive and doesn't "
                "book.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

FLAT_SIZES = pool("one-bedroom; two-bedroom; three-bedroom; small studio")
MOVERS = pool("Swift Movers; Easy Move; Big Van Removals; Careful Hands")
MOVING_HOUSE = Scenario(
    topic="moving house",
    slots={
        "origin": CITIES,
        "destination": CITIES,
        "date": DATES,
        "alt_date": DATES,
        "rooms": FLAT_SIZES,
        "price": BIG_PRICES,
        "movers": MOVERS,
    },
    opening=(
        step(
            "C: Hello, I need a moving company for {date}.|A: Sure. Where are you moving from and to?"
            "|C: From {origin} to {destination}.",
            "A: {movers}, good morning.|C: Hi, I'm moving from {origin} to {destination} on {date} and need some help.",
            "C: Hi, do you do moves from {origin} to {destination}?|A: Yes, we do. When is the move?|C: On {date}.",
        ),
        PHONE_SMALL_TALK,
        step(
            "A: How big is your place?|C: It's a {rooms} flat.",
            "A: How much furniture do you have?|C: Everything from a {rooms} flat.",
        ),
        step(
            "A: Which floor are you on?|C: The third floor, and there's no lift.",
            "A: Is there parking outside?|C: Yes, right by the door.",
            chance=0.5,
        ),
        step(
            "A: Do you need help with packing?|C: No, we'll pack ourselves.",
            "A: Any large items, like a piano?|C: No, nothing like that.",
            chance=0.5,
        ),
    ),
    outcomes=(
        outcome(
            "booked",
            [
                step(
                    "A: That would cost {price} in total.|C: That's reasonable. Let's book it.",
                    "A: For a {rooms} flat, it comes to {price}.|C: OK, please book it.",
                ),
                step("C: Do you provide boxes?|A: Yes, we bring boxes for free.", chance=0.4),
            ],
            [
                "{C} is moving from {origin} to {destination} on {date} and books {A}'s company for {price}.",
                "{A} will move {C}'s {rooms} flat from {origin} to {destination} on {date} for {price}.",
            ],
        ),
        outcome(
            "other date",
            [
                step(
                    "A: We're fully booked on {date}, but we could do {alt_date} for {price}."
                    "|C: OK, {alt_date} works for me.",
                    "A: Sorry, {date} is taken. How about {alt_date}? It would be {price}.|C: Fine, let's do {alt_date}.",
                ),
            ],
            [
                "{C} wants movers from {origin} to {destination} on {date}, but {A}'s company is booked, so they agree on "
                "{alt_date} for {price}.",
                "{A} can't move {C} on {date}, so {C} books the move to {destination} for {alt_date} instead, at {price}.",
            ],
        ),
        outcome(
            "too expensive",
            [
                step(
                    "A: For a {rooms} flat to {destination}, it's {price}."
                    "|C: Hmm, that's more than I can afford. I'll think about it.",
                    "A: That would be {price}.|C: Oh, that's too expensive for me. I'll ask around.",
                ),
            ],
            [
                "{C} asks {A} about moving from {origin} to {destination} on {date}, but the quote of {price} is too "
                "expensive for {C}.",
                "{C} is moving to {destination} on {date}, but {A}'s price of {price} is too much, so {C} doesn't book.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SCENARIOS = (FLIGHT, CAR_RENTAL, MOVING_HOUSE)
