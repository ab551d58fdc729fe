"""Booking scenarios: a restaurant table, a hotel check-in and a hairdresser appointment."""

from __future__ import annotations

from sumlab.demo.scenarios import (
    DAY_TIMES,
    EVENING_TIMES,
    FIRST_NAMES,
    GOODBYE,
    PHONE_SMALL_TALK,
    PHONES,
    PRICES,
    SMALL_COUNTS,
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

RESTAURANTS = pool(
    "Luigi's; Casa Rosa; Golden Dragon; Bella Napoli; Spice Garden; Blue Anchor; Olive Tree; Le Petit Bistro",
    "Saffron House; Copper Kettle",
)
DISHES = pool(
    "seafood risotto; roast duck; mushroom soup; beef stew; lamb curry; grilled salmon; vegetable lasagne",
    "black truffle pasta; coconut prawns",
)
_TAKE_NAME = step(
    "A: Could I have your name, please?|C: {first} {surname}.",
    "A: What name should I put it under?|C: {surname}. {first} {surname}.",
    "A: And your name?|C: It's {first} {surname}.",
)
RESTAURANT = Scenario(
    topic="restaurant booking",
    slots={
        "restaurant": RESTAURANTS,
        "party": SMALL_COUNTS,
        "day": WEEKDAYS,
        "time": EVENING_TIMES,
        "alt_time": EVENING_TIMES,
        "first": FIRST_NAMES,
        "surname": SURNAMES,
        "agent": FIRST_NAMES,
        "dish": DISHES,
        "phone": PHONES,
    },
    opening=(
        step(
            "A: Good evening, {restaurant}. How can I help you?"
            "|C: Hello. I'd like to book a table for {party} on {day}.",
            "C: Hello, is that {restaurant}?|A: Yes, {agent} speaking. What can I do for you?"
            "|C: I'd like to reserve a table for {party} people for {day}.",
            "C: Hi, I'm calling to make a reservation at {restaurant} for {day}.|A: Of course. How many people?"
            "|C: There will be {party} of us.",
            "A: Thank you for calling {restaurant}. This is {agent}."
            "|C: Hi {agent}. Can I book a table for {party} for {day} evening?",
        ),
        PHONE_SMALL_TALK,
        step(
            "A: What time would you like?|C: Around {time}, if possible.",
            "A: And at what time?|C: {time} would be perfect.",
            "C: We were hoping for {time}.",
            "A: For what time, please?|C: Let's say {time}.",
        ),
        step("A: Sorry, did you say {time}?|C: Yes, {time}.", chance=0.2),
    ),
    outcomes=(
        outcome(
            "confirmed",
            [
                step(
                    "A: Let me check. Yes, we have a table free at {time}.",
                    "A: That's fine, we still have tables at {time}.",
                    "A: Good news, {time} is available.",
                ),
                _TAKE_NAME,
                step(
                    "C: Could we have a table by the window?|A: Sure, I'll make a note of it.",
                    chance=0.3,
                    note="{C} asks for a table by the window.",
                ),
                step(
                    "A: Is it for a special occasion?|C: Yes, it's a birthday dinner."
                    "|A: Lovely. Let us know if you'd like a cake.",
                    "A: Will you need a high chair for a child?|C: No, we're all adults.",
                    chance=0.35,
                ),
                step("A: Can I have a phone number, just in case?|C: Sure, it's {phone}.", chance=0.4),
                step(
                    "C: By the way, do you still serve the {dish}?|A: Yes, it's one of our most popular dishes.",
                    chance=0.3,
                    note="{A} confirms that the {dish} is still on the menu.",
                ),
                step(
                    "A: So that's a table for {party} at {time} on {day}. See you then.",
                    "A: All done. We look forward to seeing you on {day}.",
                    "A: Perfect, your table is booked.",
                ),
            ],
            [
                "{C} books a table for {party} at {restaurant} on {day} at {time} under the name {surname}.",
                "{C} calls {restaurant} and reserves a table for {party} people at {time} on {day}. The booking is under "
                "{surname}.",
                "{C} wants a table for {party} on {day} at {time}, and {A} from {restaurant} confirms the reservation for "
                "{first} {surname}.",
            ],
        ),
        outcome(
            "alternative",
            [
                step(
                    "A: I'm sorry, we're fully booked at {time}. How about {alt_time}?|C: {alt_time} is fine.",
                    "A: Hmm, {time} is taken, I'm afraid. I could offer you {alt_time}."
                    "|C: OK, we'll take {alt_time} then.",
                    "A: Unfortunately there's nothing at {time}. Would {alt_time} work for you?"
                    "|C: Let me think. Yes, {alt_time} works.",
                ),
                _TAKE_NAME,
                step(
                    "A: Great. A table for {party} at {alt_time} on {day} then.",
                    "A: Fine, we'll see you on {day} at {alt_time}.",
                ),
            ],
            [
                "{C} wants to book a table for {party} at {restaurant} at {time} on {day}, but it is fully booked, so {C} "
                "takes {alt_time} instead.",
                "{restaurant} has no table at {time} on {day}, so {A} offers {alt_time}, and {C} accepts. The table for "
                "{party} is booked under {surname}.",
            ],
        ),
        outcome(
            "declined",
            [
                step(
                    "A: I'm afraid we're fully booked all evening on {day}."
                    "|C: Oh, that's a shame. I'll try somewhere else then.",
                    "A: Sorry, there are no tables left on {day}. We have a private party."
                    "|C: Never mind, we'll go somewhere else.",
                    "A: I'm really sorry, {day} is completely full.|C: What a pity. I'll find another place then.",
                ),
                step("A: Would you like to book another day instead?|C: No, thanks. It has to be {day}.", chance=0.5),
            ],
            [
                "{C} wants to book a table for {party} at {restaurant} on {day}, but it's fully booked, so {C} will look "
                "elsewhere.",
                "{C} calls {restaurant} for a table for {party} on {day} at {time}. {A} says they are full that day, so "
                "{C} will go somewhere else.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

HOTELS = pool(
    "Grand Hotel; Riverside Inn; Park Plaza; Harbour View Hotel; Royal Hotel; Sunset Lodge", "Maple Court Hotel"
)
ROOMS = Pool(tuple(str(room) for floor in range(2, 9) for room in range(floor * 100 + 3, floor * 100 + 30, 4)))
BREAKFAST_TIMES = pool("6:30 am; 7 am; 7:30 am")
_FOUND_BOOKING = step(
    "A: Yes, here it is. A double room for {nights} nights.|C: That's right.",
    "A: I've found your reservation. You're staying {nights} nights with us, correct?|C: Correct.",
    "A: Let me see. Yes, {nights} nights in a double room.|C: Exactly.",
)
HOTEL = Scenario(
    topic="hotel check-in",
    slots={
        "hotel": HOTELS,
        "first": FIRST_NAMES,
        "surname": SURNAMES,
        "nights": SMALL_COUNTS,
        "room": ROOMS,
        "breakfast": BREAKFAST_TIMES,
        "rate": PRICES,
    },
    opening=(
        step(
            "A: Good evening, welcome to the {hotel}. How can I help you?"
            "|C: Hi, I have a reservation. The name is {first} {surname}.",
            "C: Hello, I'd like to check in, please. I booked a room under {surname}."
            "|A: Welcome to the {hotel}. Let me look that up.",
            "A: Hello, welcome to the {hotel}. Are you checking in?|C: Yes. The booking is under the name {surname}.",
            "C: Good afternoon. Checking in, please. {first} {surname}.|A: Welcome to the {hotel}, {first}.",
        ),
        SMALL_TALK,
    ),
    outcomes=(
        outcome(
            "standard",
            [
                _FOUND_BOOKING,
                step(
                    "A: Could I see your passport, please?|C: Here you are.",
                    "A: May I have your ID and a credit card?|C: Sure, here they are.",
                    chance=0.7,
                ),
                step(
                    "A: You're in room {room}. Breakfast is served from {breakfast} in the restaurant.|C: Great, thanks.",
                    "A: Here's your key. Your room is {room}.|C: Thank you. When is breakfast?"
                    "|A: From {breakfast}, on the ground floor.",
                    "A: Room {room} is ready for you. Breakfast starts at {breakfast}.|C: Wonderful.",
                ),
                step(
                    "A: Would you like help with your luggage?|C: No, thanks. I only have one bag.",
                    "C: Is there parking at the hotel?|A: Yes, in the garage behind the building.",
                    chance=0.4,
                ),
                step("C: What time is check-out?|A: Check-out is at 11 am.", chance=0.3),
                step("C: Is there Wi-Fi in the room?|A: Yes, the password is on your key card holder.", chance=0.3),
                step(
                    "C: Could I check out late on my last day?|A: Yes, you can stay until 1 pm at no extra charge.",
                    chance=0.25,
                    note="{C} may check out late, at 1 pm.",
                ),
            ],
            [
                "{C} checks in at the {hotel} for {nights} nights and gets room {room}. Breakfast starts at {breakfast}.",
                "{A} checks {C} into room {room} at the {hotel} for {nights} nights and tells {C} that breakfast is from "
                "{breakfast}.",
            ],
        ),
        outcome(
            "upgrade",
            [
                _FOUND_BOOKING,
                step(
                    "A: Actually, we have a free upgrade to a suite for you today. It's room {room}."
                    "|C: Wow, that's wonderful, thank you!",
                    "A: Your room type is fully booked, so we've upgraded you to a suite at no extra cost. Room {room}."
                    "|C: Oh, lovely!",
                ),
                step(
                    "C: Where is the lift?|A: Just behind you, on the left.",
                    "C: Is breakfast included?|A: Yes, it is.",
                    chance=0.5,
                ),
                step(
                    "A: Would you like help with your luggage?|C: Yes, please. The suitcase is quite heavy.", chance=0.4
                ),
            ],
            [
                "{C} checks in at the {hotel} for {nights} nights and is given a free upgrade to a suite, room {room}.",
                "{A} upgrades {C} to a suite, room {room}, at no extra cost for the stay of {nights} nights at the "
                "{hotel}.",
            ],
        ),
        outcome(
            "no reservation",
            [
                step(
                    "A: I'm sorry, I can't find a booking under {surname}.|C: Really? I booked it online last week.",
                    "A: Hmm, there's no reservation under {surname} in our system."
                    "|C: That's strange. I have the confirmation email.",
                ),
                step(
                    "A: Well, we do have a room free, room {room}, at {rate} a night. How many nights?"
                    "|C: {nights}. I'll take it.",
                    "A: Don't worry, room {room} is available at {rate} a night."
                    "|C: Fine, I'll take it for {nights} nights.",
                ),
                step(
                    "A: Could I see your passport, please?|C: Here you are.",
                    "A: I'll just need a credit card.|C: Here it is.",
                    chance=0.6,
                ),
                step("A: I'm very sorry for the trouble.|C: It's fine. These things happen.", chance=0.5),
            ],
            [
                "{A} can't find {C}'s reservation at the {hotel}, but offers room {room} at {rate} a night, and {C} takes "
                "it for {nights} nights.",
                "There is no booking under {surname} at the {hotel}, so {C} takes room {room} for {nights} nights at "
                "{rate} a night.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SALONS = pool("Style Studio; Top Cuts; Hair by Nadia; The Barber Shop; Curl Up")
HAIR_SERVICES = pool("haircut; trim; colour; haircut and blow-dry; beard trim")
_DAY_AND_TIME = any_order(
    step(
        "A: Which day suits you?|C: {day}, if possible.",
        "C: Is {day} possible?",
        "A: When would you like to come in?|C: On {day}.",
    ),
    step(
        "A: Morning or afternoon?|C: Around {time} would be good.",
        "C: Ideally at {time}.",
        "A: What time?|C: {time}, please.",
    ),
)
HAIRDRESSER = Scenario(
    topic="hairdresser appointment",
    slots={
        "salon": SALONS,
        "service": HAIR_SERVICES,
        "stylist": FIRST_NAMES,
        "first": FIRST_NAMES,
        "day": WEEKDAYS,
        "time": DAY_TIMES,
        "alt_time": DAY_TIMES,
        "price": PRICES,
        "phone": PHONES,
    },
    opening=(
        step(
            "A: {salon}, good morning.|C: Hi, I'd like to make an appointment for a {service}.",
            "C: Hello, can I book a {service} with {stylist}?|A: Let me check {stylist}'s diary.",
            "C: Hi, do you have any time for a {service} this week?|A: Let me have a look.",
            "A: Hello, {salon}. How can I help?|C: I'd like to book a {service}, please.",
        ),
        _DAY_AND_TIME,
    ),
    outcomes=(
        outcome(
            "booked",
            [
                step(
                    "A: {stylist} can see you on {day} at {time}.|C: Perfect.",
                    "A: Yes, {time} on {day} is free.|C: Great, put me down for that.",
                ),
                step("A: Can I take your name?|C: {first}.", "A: Your name, please?|C: It's {first}."),
                step(
                    "A: Do you have a style in mind?|C: Just something short and easy.",
                    "A: Have you been to us before?|C: Yes, a few times.",
                    chance=0.5,
                ),
                step("A: Can I have a phone number?|C: It's {phone}.", chance=0.4),
                step("C: How much is a {service}?|A: It's {price}.", chance=0.4, note="The {service} costs {price}."),
            ],
            [
                "{C} books a {service} at {time} on {day}.",
                "{A} books {C} in for a {service} on {day} at {time}.",
            ],
        ),
        outcome(
            "alternative",
            [
                step(
                    "A: Sorry, {time} is taken. I have {alt_time} on {day}.|C: {alt_time} is fine.",
                    "A: I'm afraid {time} is gone. Would {alt_time} suit you?|C: Yes, {alt_time} works.",
                ),
                step("A: Do you have a style in mind?|C: Just a little shorter, please.", chance=0.5),
                step("A: Can I take your name?|C: {first}.", "A: Your name, please?|C: It's {first}."),
            ],
            [
                "{C} wants a {service} on {day} at {time}, but that slot is taken, so {C} takes {alt_time} instead.",
                "{A} has no slot at {time} on {day}, so {C} books a {service} at {alt_time} instead.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SCENARIOS = (RESTAURANT, HOTEL, HAIRDRESSER)
