"""Errand scenarios: returning an item, the pharmacy and opening a bank account."""

from __future__ import annotations

from sumlab.demo.scenarios import (
    DAY_TIMES,
    FIRST_NAMES,
    GOODBYE,
    PRICES,
    SMALL_TALK,
    SURNAMES,
    WEEKDAYS,
    Pool,
    Scenario,
    outcome,
    pool,
    step,
)

SHOP_ITEMS = pool(
    "blue jacket; pair of jeans; wool sweater; leather belt; pair of trainers; silk scarf; denim shirt; raincoat; "
    "summer dress; pair of boots; winter coat; striped shirt",
    "corduroy blazer; linen skirt; cashmere cardigan; velvet waistcoat",
)
CLOTHING_PROBLEMS = Pool(
    (
        ("is too small", "It's too small for me."),
        ("is too big", "It's much too big."),
        ("has a stain on it", "There's a stain on it that I didn't notice in the shop."),
        ("has a broken zip", "The zip broke the first time I used it."),
        ("lost its colour in the wash", "The colour ran the first time I washed it."),
        ("has a torn seam", "The seam has already come apart."),
    )
)
RETURN_ITEM = Scenario(
    topic="return an item",
    slots={"item": SHOP_ITEMS, ("problem", "problem_said"): CLOTHING_PROBLEMS, "price": PRICES, "day": WEEKDAYS},
    opening=(
        step(
            "C: Excuse me, I bought this {item} here on {day}, but there's a problem.|A: What's wrong with it?"
            "|C: {problem_said}",
            "A: Hello, can I help you?|C: Yes, I'd like to return this {item}. I bought it on {day}. {problem_said}",
            "C: Hi. I want to bring back this {item}.|A: What's the matter with it?"
            "|C: {problem_said} I only bought it on {day}.",
            "A: Next, please.|C: Hi, I bought this {item} on {day}. {problem_said}",
        ),
        SMALL_TALK,
        step(
            "A: How much did you pay for it?|C: {price}.",
            "C: I paid {price} for it.",
            "A: It was {price}, right?|C: Yes, {price}.",
        ),
        step("A: Let me have a look at it.|C: Here.|A: Yes, I see what you mean.", chance=0.5),
        step(
            "A: Have you worn it?|C: Only once, to try it on at home.",
            "A: Was it a gift?|C: No, I bought it for myself.",
            chance=0.5,
        ),
    ),
    outcomes=(
        outcome(
            "refund",
            [
                step(
                    "A: Do you have the receipt?|C: Yes, here you are.|A: Fine. I'll refund the {price} to your card.",
                    "A: Can I see the receipt?|C: Here it is.|A: OK, you'll get a full refund of {price}.",
                ),
            ],
            [
                "{C} returns a {item} that {problem} and gets a full refund of {price}.",
                "{C} brings back a {item} bought on {day} because it {problem}. {A} gives {C} a refund of {price}.",
            ],
        ),
        outcome(
            "exchange",
            [
                step(
                    "A: Would you like a refund or an exchange?|C: An exchange, please.",
                    "C: Could I just exchange it for a new one?|A: Of course.",
                ),
                step(
                    "A: Here's a new one. Please check it before you go.|C: It looks perfect. Thanks.",
                    "A: Let me get you another one from the back.|C: Thank you.",
                ),
            ],
            [
                "{C} exchanges a {item} that cost {price} because it {problem}.",
                "{C} brings back a {item} that {problem}, and {A} exchanges it for a new one.",
            ],
        ),
        outcome(
            "store credit",
            [
                step(
                    "A: Do you have the receipt?|C: No, I'm afraid I lost it."
                    "|A: Then I can't give you a refund, but I can offer store credit of {price}."
                    "|C: Well, that's better than nothing.",
                    "A: Can I see your receipt?|C: I'm sorry, I threw it away."
                    "|A: Without a receipt I can only give you a voucher for {price}.|C: OK, I'll take the voucher.",
                ),
            ],
            [
                "{C} wants to return a {item} that {problem}, but without a receipt {A} can only offer store credit of "
                "{price}, which {C} accepts.",
                "{C} has no receipt for the {item}, so instead of a refund {C} gets store credit of {price}.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

MEDICINES = pool(
    "amoxicillin; ibuprofen; cough syrup; antihistamine tablets; eye drops; nasal spray; vitamin D tablets; "
    "antibiotic cream",
    "hydrocortisone cream; throat lozenges",
)
DOSES = pool("twice a day; three times a day; once a day; every morning; every evening")
PHARMACY = Scenario(
    topic="pharmacy",
    slots={
        "first": FIRST_NAMES,
        "surname": SURNAMES,
        "medicine": MEDICINES,
        "dose": DOSES,
        "days": pool("5; 7; 10; 14"),
        "price": PRICES,
        "generic_price": PRICES,
        "time": DAY_TIMES,
    },
    opening=(
        step(
            "C: Hi, I'd like to pick up a prescription for {first} {surname}.|A: Just a moment, let me find it.",
            "A: Good morning. Can I help you?|C: Yes, I have a prescription from my doctor. The name is {surname}.",
            "C: Hello, I'm here for my prescription. {first} {surname}.|A: Sure, one moment.",
        ),
        SMALL_TALK,
        step(
            "A: Can you confirm your date of birth?|C: Yes, it's the 4th of May.",
            "A: And your address, please?|C: 12 Hill Street.",
            chance=0.5,
        ),
        step(
            "A: It's for {medicine}, is that right?|C: Yes, that's it.",
            "A: Here it is: {medicine}.|C: That's the one.",
            "C: It should be {medicine}.|A: Yes, I see it.",
        ),
    ),
    outcomes=(
        outcome(
            "filled",
            [
                step(
                    "A: Take it {dose}, with food.|C: For how long?|A: For {days} days.",
                    "A: The doctor says {dose} for {days} days.|C: With food?|A: Yes, after meals is best.",
                ),
                step(
                    "A: That'll be {price}.|C: Here you are.",
                    "C: How much is it?|A: {price}, please.",
                    chance=0.6,
                    note="It costs {price}.",
                ),
                step(
                    "A: Do you have any allergies?|C: Not that I know of.",
                    "A: Are you taking any other medicine?|C: No, nothing else.",
                    chance=0.4,
                ),
                step(
                    "C: Are there any side effects?|A: It may make you a little sleepy.",
                    chance=0.3,
                    note="{A} warns that it may cause sleepiness.",
                ),
            ],
            [
                "{C} picks up a prescription for {medicine}. {A} says to take it {dose} for {days} days.",
                "{A} gives {C} the {medicine} and explains that it should be taken {dose} for {days} days.",
            ],
        ),
        outcome(
            "out of stock",
            [
                step(
                    "A: I'm sorry, we're out of {medicine} at the moment. It'll be in tomorrow after {time}."
                    "|C: OK, I'll come back tomorrow then.",
                    "A: Oh dear, we've run out of {medicine}. We'll have more tomorrow from {time}."
                    "|C: Fine, I'll come back tomorrow.",
                ),
                step(
                    "C: Could another pharmacy have it?|A: Maybe, but the one on Main Street is closed today.",
                    "A: Shall I keep a box for you?|C: Yes, please. That would be great.",
                    chance=0.6,
                ),
            ],
            [
                "{C} comes to collect {medicine}, but the pharmacy is out of it, so {C} will come back tomorrow after "
                "{time}.",
                "{A} has no {medicine} left and tells {C} to come back tomorrow after {time}.",
            ],
        ),
        outcome(
            "generic",
            [
                step(
                    "A: There's a generic version that works the same and costs only {generic_price}. Would you like "
                    "that instead?|C: Yes, please.",
                    "A: We also have a cheaper generic version for {generic_price}. Would you prefer that?"
                    "|C: Sure, why not.",
                ),
                step("A: Take it {dose}.|C: Thank you.", "C: How often should I take it?|A: {dose}."),
                step("C: Is it really the same?|A: Yes, it has exactly the same active ingredient.", chance=0.5),
            ],
            [
                "{C} collects a prescription for {medicine} and takes the cheaper generic version for {generic_price}, to "
                "be taken {dose}.",
                "{A} offers {C} a generic version of {medicine} for {generic_price}, and {C} takes it.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

ACCOUNTS = pool("checking; savings; student; current")
CARD_DAYS = pool("3; 5; 7; 10")
INTEREST_RATES = pool("1.5%; 2%; 2.5%; 3%")
CLOSING_TIMES = pool("4 pm; 4:30 pm; 5 pm; 5:30 pm; 6 pm")
BANK = Scenario(
    topic="open a bank account",
    slots={
        "account": ACCOUNTS,
        "deposit": PRICES,
        "card_days": CARD_DAYS,
        "rate": INTEREST_RATES,
        "time": CLOSING_TIMES,
        "first": FIRST_NAMES,
        "surname": SURNAMES,
    },
    opening=(
        step(
            "C: Hello, I'd like to open a bank account.|A: Certainly. Please take a seat.",
            "A: Good morning, how can I help you today?|C: I'd like to open an account with your bank.",
            "C: Hi, I just moved here and I need a bank account.|A: No problem, I can help you with that.",
            "A: Next customer, please.|C: Hi. What do I need to open an account?",
        ),
        SMALL_TALK,
        step(
            "A: What kind of account would you like?|C: A {account} account, please.",
            "C: I'm thinking of a {account} account.|A: Good choice.",
            "A: Do you want a {account} account?|C: Yes, exactly.",
        ),
        step(
            "A: May I have your full name?|C: {first} {surname}.",
            "A: Can I see some ID?|C: Here's my passport.",
            chance=0.7,
        ),
        step(
            "A: Do you work here in town?|C: Yes, at a hospital nearby.",
            "A: Are you a student?|C: No, I work in an office.",
            chance=0.4,
        ),
    ),
    outcomes=(
        outcome(
            "opened",
            [
                step(
                    "A: Everything's in order. How much would you like to deposit today?|C: {deposit}, please.",
                    "A: Would you like to pay anything in today?|C: Yes, {deposit}.",
                ),
                step(
                    "A: Done. Your card will arrive by post in {card_days} days.",
                    "A: All set. You'll get your card in {card_days} days.",
                ),
                step(
                    "A: Would you like online banking?|C: Yes, definitely.|A: I'll set that up for you.",
                    "C: Can I use the app on my phone?|A: Yes, you'll get a login by email.",
                    chance=0.5,
                ),
                step(
                    "C: What's the interest rate?|A: It's {rate} a year.",
                    chance=0.3,
                    note="The interest rate is {rate}.",
                ),
            ],
            [
                "{C} opens a {account} account and deposits {deposit}. The card will arrive in {card_days} days.",
                "{A} opens a {account} account for {C}, who pays in {deposit}. The card will come in {card_days} days.",
            ],
        ),
        outcome(
            "missing document",
            [
                step(
                    "A: I'll also need proof of address, like a utility bill.|C: Oh, I didn't bring one.",
                    "A: Do you have proof of your address?|C: No, I didn't know I needed it.",
                ),
                step(
                    "A: Then please come back with it. We're open until {time}.|C: OK, I'll come back later.",
                    "A: I'm afraid I can't open the account without it. We close at {time} today."
                    "|C: I'll bring it before {time}.",
                ),
            ],
            [
                "{C} wants to open a {account} account, but {C} doesn't have proof of address, so {C} will come back with "
                "it.",
                "{A} can't open a {account} account for {C} without proof of address. The bank is open until {time}.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SCENARIOS = (RETURN_ITEM, PHARMACY, BANK)
