"""Problem scenarios: lost property, tech support and an apartment repair."""

from __future__ import annotations

from sumlab.demo.scenarios import (
    CITIES,
    DAY_TIMES,
    FIRST_NAMES,
    GOODBYE,
    PHONE_SMALL_TALK,
    PHONES,
    PRICES,
    SMALL_TALK,
    WEEKDAYS,
    Pool,
    Scenario,
    outcome,
    pool,
    step,
)

LOST_ITEMS = pool(
    "black wallet; brown leather bag; set of keys; green backpack; silver watch; blue umbrella; laptop bag; "
    "pair of glasses; grey scarf; notebook",
    "violin case; red suitcase; gold bracelet",
)
LOST_ITEM = Scenario(
    topic="lost property",
    slots={"lost": LOST_ITEMS, "city": CITIES, "time": DAY_TIMES, "phone": PHONES, "first": FIRST_NAMES},
    opening=(
        step(
            "C: Excuse me, is this the lost property office?|A: Yes, it is. How can I help?"
            "|C: I lost my {lost} on the train from {city}.",
            "A: Lost and found, can I help you?|C: I hope so. I left my {lost} on the train from {city}.",
            "C: Hi, I think I left my {lost} on a train.|A: Which train was it?|C: The one from {city}.",
        ),
        SMALL_TALK,
        step(
            "A: What time did the train arrive?|C: At {time}.",
            "C: It got in at {time}.",
            "A: When was that?|C: Today, at {time}.",
        ),
        step(
            "A: Which part of the train were you in?|C: Near the front, I think.",
            "C: I was sitting near the door.",
            chance=0.5,
        ),
        step(
            "C: I'm really worried. It's very important to me.|A: Don't worry, a lot of things get handed in.",
            chance=0.4,
        ),
        step(
            "A: Can you describe it?|C: It's quite new. My name is written inside.",
            "A: Anything special about it?|C: It has a small name tag.",
            chance=0.6,
        ),
    ),
    outcomes=(
        outcome(
            "found",
            [
                step(
                    "A: Let me check. Is this it?|C: Yes, that's mine! Thank you so much!",
                    "A: Someone handed in a {lost} an hour ago. Is this yours?|C: Yes! I can't believe it.",
                ),
                step(
                    "A: Please sign here and show me some ID.|C: Sure.",
                    "A: Just fill in this form, please.|C: Of course.",
                    chance=0.6,
                ),
                step("C: Who handed it in?|A: A cleaner found it under a seat.", chance=0.5),
            ],
            [
                "{C} left a {lost} on the train from {city}. It was handed in, and {C} gets it back from {A}.",
                "{C} comes to the lost property office about a {lost} left on the {time} train from {city}. Luckily, it "
                "was handed in.",
            ],
        ),
        outcome(
            "not found",
            [
                step(
                    "A: I'm sorry, nothing like that has been handed in.|C: Oh no.",
                    "A: I'm afraid nobody has handed in a {lost}.|C: That's a pity.",
                ),
                step(
                    "A: Leave me your phone number and I'll call you if it turns up.|C: It's {phone}.",
                    "C: Could you call me if it turns up? My number is {phone}.|A: Of course.",
                ),
                step("A: You could also ask at the station in {city}.|C: Good idea, I'll call them.", chance=0.5),
            ],
            [
                "{C} lost a {lost} on the train from {city}. It hasn't been handed in, so {C} leaves the number {phone} "
                "with {A}.",
                "{C}'s {lost} hasn't been found yet. {A} will call {C} on {phone} if it turns up.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

DEVICES = pool("laptop; printer; router; phone; tablet; smart TV; desktop computer")
DEVICE_PROBLEMS = Pool(
    (
        ("won't turn on", "It won't turn on at all."),
        ("keeps freezing", "It keeps freezing every few minutes."),
        ("can't connect to the internet", "It can't connect to the internet anymore."),
        ("has become very slow", "It has become really slow."),
        ("keeps restarting by itself", "It keeps restarting by itself."),
    )
)
TICKETS = Pool(tuple(str(number) for number in range(40117, 99999, 1307)))
REPAIR_DAYS = pool("3; 5; 7; 10; 14")
TECH_SUPPORT = Scenario(
    topic="tech support",
    slots={
        "device": DEVICES,
        ("problem", "problem_said"): DEVICE_PROBLEMS,
        "agent": FIRST_NAMES,
        "day": WEEKDAYS,
        "ticket": TICKETS,
        "days": REPAIR_DAYS,
        "months": pool("3; 5; 8; 11"),
    },
    opening=(
        step(
            "A: Tech support, this is {agent}. How can I help?"
            "|C: Hi, I have a problem with my {device}. {problem_said}",
            "C: Hello, I'm calling about my {device}.|A: What seems to be the problem?|C: {problem_said}",
            "C: Hi, my {device} is giving me trouble. {problem_said}|A: I'm sorry to hear that.",
        ),
        PHONE_SMALL_TALK,
        step(
            "A: Are any lights on?|C: Just a small orange one.",
            "A: Have you installed anything new recently?|C: No, nothing.",
            "A: Does it make any strange noises?|C: No, it's completely quiet.",
            chance=0.6,
        ),
        step(
            "A: How long has this been happening?|C: Since {day}.",
            "A: When did it start?|C: On {day}, I think.",
            chance=0.6,
        ),
    ),
    outcomes=(
        outcome(
            "restart fixed it",
            [
                step(
                    "A: Let's try restarting it. Hold the power button for ten seconds.|C: OK, done. It's working again!",
                    "A: Please unplug it, wait thirty seconds and plug it back in.|C: All right. Oh, it works now.",
                ),
            ],
            [
                "{C} calls tech support because the {device} {problem}. {A} tells {C} to restart it, and that fixes the "
                "problem.",
                "{C}'s {device} {problem}, but after {A} has {C} restart it, it works again.",
            ],
        ),
        outcome(
            "repair",
            [
                step(
                    "A: Have you tried restarting it?|C: Yes, several times."
                    "|A: Then you'll need to send it in for repair.",
                    "A: I've tried everything I can do remotely. It needs to go in for repair.",
                ),
                step(
                    "C: How long will it take?|A: About {days} days. Your ticket number is {ticket}.",
                    "A: The repair takes about {days} days. Please write down your ticket number: {ticket}.",
                ),
                step("C: Will I have to pay?|A: Only if the damage was caused by an accident.", chance=0.5),
            ],
            [
                "{C}'s {device} {problem}. {A} can't fix it over the phone, so {C} will send it in for a repair of about "
                "{days} days.",
                "{C} calls because the {device} {problem}. It must be repaired, which takes about {days} days, and the "
                "ticket number is {ticket}.",
            ],
        ),
        outcome(
            "replacement",
            [
                step(
                    "A: Is it still under warranty?|C: Yes, I bought it {months} months ago.",
                    "C: I bought it {months} months ago. Is it still under warranty?|A: Yes, it is.",
                ),
                step(
                    "A: Then we'll send you a new one. It should arrive within {days} days.|C: Great, thank you.",
                    "A: In that case we'll replace it. Expect the new one within {days} days.",
                ),
            ],
            [
                "{C}'s {device} {problem}. Since it was bought {months} months ago and is under warranty, {A} will send a "
                "new one within {days} days.",
                "{A} will replace {C}'s {device}, which {problem}. The new one should arrive within {days} days.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

HOME_PROBLEMS = Pool(
    (
        ("the kitchen sink is leaking", "The kitchen sink is leaking."),
        ("the heating doesn't work", "The heating isn't working."),
        ("there's no hot water in the shower", "There's no hot water in the shower."),
        ("the front door lock is broken", "The lock on the front door is broken."),
        ("a bedroom window won't close", "One of the bedroom windows won't close."),
        ("the toilet keeps running", "The toilet won't stop running."),
    )
)
FLATS = Pool(tuple(str(number) for number in range(3, 60, 2)))
APARTMENT_REPAIR = Scenario(
    topic="apartment repair",
    slots={
        ("problem", "problem_said"): HOME_PROBLEMS,
        "flat": FLATS,
        "first": FIRST_NAMES,
        "day": WEEKDAYS,
        "time": DAY_TIMES,
        "cost": PRICES,
    },
    opening=(
        step(
            "C: Hi, this is {first} from flat {flat}. {problem_said}|A: Oh no.",
            "A: Hello, building management.|C: Hello, I live in flat {flat}. {problem_said}",
            "C: Sorry to bother you. I'm calling about flat {flat}. {problem_said}|A: I'm sorry to hear that.",
        ),
        PHONE_SMALL_TALK,
        step(
            "A: When did it start?|C: Yesterday evening.",
            "A: Since when?|C: Since the weekend.",
            "C: It started two days ago.",
        ),
        step(
            "A: How bad is it?|C: It's getting worse every day.",
            "A: Is it an emergency?|C: Not really, but it's very annoying.",
            "A: Have you tried to fix it yourself?|C: Yes, but it didn't help.",
            chance=0.6,
        ),
    ),
    outcomes=(
        outcome(
            "technician",
            [
                step(
                    "C: It's the second time this month.|A: I'll make sure it's fixed properly this time.", chance=0.4
                ),
                step(
                    "A: I'll send someone to fix it on {day} at {time}. Will you be home?|C: Yes, I'll be there.",
                    "A: Our repairman can come on {day} at {time}.|C: That's fine. I'll be home.",
                ),
            ],
            [
                "{C} reports that {problem} in flat {flat}. {A} will send someone to fix it on {day} at {time}.",
                "{A} arranges for a repairman to come to flat {flat} on {day} at {time} because {problem}.",
            ],
        ),
        outcome(
            "landlord today",
            [
                step(
                    "A: I'll come and take a look myself this afternoon, at about {time}.|C: Thank you, that's quick.",
                    "A: I'm nearby, so I can come today at {time}.|C: Great, see you then.",
                ),
                step("A: Please don't touch anything until I get there.|C: I won't.", chance=0.5),
            ],
            [
                "{C} tells {A} that {problem}, and {A} will come to flat {flat} at {time} today to look at it.",
                "{C} in flat {flat} reports that {problem}. {A} will come over at {time} today.",
            ],
        ),
        outcome(
            "tenant pays",
            [
                step(
                    "A: I'm afraid that's your responsibility under the lease. A repair usually costs about {cost}."
                    "|C: Really? All right, I'll call someone myself.",
                    "A: The lease says tenants pay for that kind of repair. It should be around {cost}."
                    "|C: Fine, I'll sort it out.",
                ),
                step("A: I can give you the number of a good repairman.|C: Yes, please.", chance=0.5),
            ],
            [
                "{C} reports that {problem}, but {A} says the tenant must pay for the repair, which costs about {cost}, "
                "so {C} will arrange it.",
                "{A} tells {C} in flat {flat} that the repair is the tenant's responsibility. It will cost about {cost}.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SCENARIOS = (LOST_ITEM, TECH_SUPPORT, APARTMENT_REPAIR)
