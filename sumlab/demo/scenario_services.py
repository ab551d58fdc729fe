"""Service scenarios: a doctor's visit, a job interview and a course enrolment."""

from __future__ import annotations

from sumlab.demo.scenario_errands import MEDICINES
from sumlab.demo.scenarios import (
    DATES,
    DAY_TIMES,
    FIRST_NAMES,
    GOODBYE,
    PRICES,
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

SYMPTOMS = Pool(
    (
        ("a sore throat", "My throat is really sore."),
        ("a bad cough", "I've had a terrible cough."),
        ("headaches", "I keep getting headaches."),
        ("back pain", "My back hurts a lot."),
        ("a high temperature", "I've had a high temperature."),
        ("stomach ache", "My stomach has been hurting."),
    )
)
DOCTOR = Scenario(
    topic="doctor's visit",
    slots={
        ("symptom", "symptom_said"): SYMPTOMS,
        "days": pool("two; three; four; five; six"),
        "doctor": SURNAMES,
        "medicine": MEDICINES,
        "dose": pool("twice a day; three times a day; once a day"),
        "course": pool("5; 7; 10"),
        "rest": pool("two; three; four"),
        "time": DAY_TIMES,
        "day": WEEKDAYS,
    },
    opening=(
        step(
            "A: Good morning. What seems to be the problem?|C: {symptom_said}",
            "C: Hello, Dr. {doctor}.|A: Hello. Please sit down. What brings you here today?|C: {symptom_said}",
            "A: Come in, please. How are you feeling?|C: Not great, doctor. {symptom_said}",
            "C: Thanks for seeing me so quickly.|A: No problem. What's wrong?|C: {symptom_said}",
        ),
        SMALL_TALK,
        any_order(
            step(
                "A: How long have you had it?|C: For about {days} days now.",
                "A: Since when?|C: It started {days} days ago.",
            ),
            step(
                "A: Do you have any other symptoms?|C: I feel tired, but that's all.",
                "A: Any fever?|C: A little, yes.",
                "A: Are you sleeping well?|C: Not really.",
                chance=0.5,
            ),
        ),
        step(
            "A: Are you taking any medicine at the moment?|C: No, nothing.",
            "C: Is it serious, doctor?|A: Let's find out.",
            chance=0.5,
        ),
        step(
            "A: Let me examine you. Just relax.|C: OK.",
            "A: Let me listen to your chest. Breathe in deeply.|C: Like this?|A: Yes, good.",
            chance=0.6,
        ),
    ),
    outcomes=(
        outcome(
            "prescription",
            [
                step(
                    "A: It's nothing serious. I'll prescribe you {medicine}. Take it {dose}.|C: For how long?"
                    "|A: For {course} days.",
                    "A: I'm going to give you {medicine}, {dose} for {course} days.|C: OK, thank you, doctor.",
                ),
                step(
                    "C: Should I stay home from work?|A: Only if you feel worse.",
                    "C: Can I drink alcohol with it?|A: Better not.",
                    chance=0.5,
                ),
            ],
            [
                "{C} has had {symptom} for {days} days. {A} prescribes {medicine}, to be taken {dose} for {course} days.",
                "{C} sees the doctor about {symptom}, and {A} gives {C} {medicine} for {course} days.",
            ],
        ),
        outcome(
            "rest",
            [
                step(
                    "A: It looks like a virus. There's no need for medicine. Rest for {rest} days and drink lots of "
                    "water.|C: Can I go to work?|A: Better not.",
                    "A: I think it's just a virus. Stay in bed for {rest} days and drink plenty of water."
                    "|C: No medicine at all?|A: No, rest is the best cure.",
                ),
            ],
            [
                "{C} has had {symptom} for {days} days. {A} thinks it's a virus and tells {C} to rest for {rest} days and "
                "drink plenty of water.",
                "{C} sees the doctor about {symptom}. {A} thinks it's a virus, so {C} should rest for {rest} days instead "
                "of taking medicine.",
            ],
        ),
        outcome(
            "tests",
            [
                step(
                    "A: I'd like you to have a blood test to be sure.|C: When can I do it?|A: Tomorrow at {time}.",
                    "A: To be safe, let's do a blood test tomorrow at {time}.|C: All right.",
                ),
                step("C: Do I need to do anything before the test?|A: Don't eat anything after midnight.", chance=0.5),
                step(
                    "A: Come back on {day} for the results.|C: I will.",
                    "C: When will I get the results?|A: On {day}. Come and see me then.",
                ),
            ],
            [
                "{C} visits the doctor about {symptom}. {A} orders a blood test for tomorrow at {time} and asks {C} to "
                "come back on {day} for the results.",
                "{C} has had {symptom} for {days} days, so {A} wants a blood test at {time} tomorrow. The results will be "
                "ready on {day}.",
            ],
        ),
    ),
    closing=(
        step(
            "C: Thank you, doctor.|A: You're welcome. Get well soon.",
            "A: Take care, and call me if it gets worse.|C: I will. Thank you.",
            chance=0.8,
        ),
    ),
)

POSITIONS = pool(
    "sales manager; software developer; graphic designer; hotel receptionist; project manager; data analyst; "
    "marketing assistant; bank clerk; nurse; teacher",
    "museum curator; pastry chef",
)
COMPANIES = pool("Brightway; Nordex; Sunfield; Redwood Systems; Apex Media; Greenline; Harbor Bank; Vista Travel")
SALARIES = pool("$2,800; $3,200; $3,500; $4,000; $4,500; $5,200")
JOB_INTERVIEW = Scenario(
    topic="job interview",
    slots={
        "position": POSITIONS,
        "company": COMPANIES,
        "previous": COMPANIES,
        "years": pool("two; three; four; five; six; eight"),
        "first": FIRST_NAMES,
        "surname": SURNAMES,
        "salary": SALARIES,
        "date": DATES,
        "day": WEEKDAYS,
        "time": DAY_TIMES,
    },
    opening=(
        step(
            "A: Good morning, and welcome to {company}. You're here for the {position} job, right?"
            "|C: Yes. Thank you for seeing me.",
            "C: Hello, I'm {first} {surname}. I'm here for the interview for the {position} position."
            "|A: Welcome to {company}, {first}. Please sit down.",
            "A: Thanks for coming in, {first}. Why do you want to work at {company}?"
            "|C: I've always admired your work, and the {position} role fits my skills.",
        ),
        SMALL_TALK,
        any_order(
            step(
                "A: Tell me about your experience.|C: I've worked at {previous} for {years} years, doing similar work.",
                "A: What did you do before?|C: I spent {years} years at {previous}.",
                "A: I see from your CV that you're at {previous} now.|C: Yes, I've been there for {years} years.",
            ),
            step(
                "A: What are your strengths?|C: I'm organised and I work well in a team.",
                "A: Why should we hire you?|C: I learn fast and I'm very reliable.",
                "A: How do you handle stress?|C: I make a list and deal with one thing at a time.",
                chance=0.7,
            ),
            step(
                "A: Why do you want to leave your current job?|C: I'm looking for new challenges.",
                "A: Where do you see yourself in five years?|C: Leading a small team, I hope.",
                chance=0.4,
            ),
        ),
        step(
            "A: Can you work at weekends if needed?|C: Yes, that's no problem.",
            "A: Do you speak any languages?|C: Spanish and a little German.",
            chance=0.5,
        ),
        step(
            "C: Could you tell me more about the team?|A: You'd be working with five other people.",
            "A: Do you have any questions for us?|C: Yes. How big is the team?|A: Six people, including you.",
            chance=0.4,
        ),
    ),
    outcomes=(
        outcome(
            "second interview",
            [
                step(
                    "A: Thank you. We'd like to invite you to a second interview on {day} at {time}."
                    "|C: Great, I'll be there.",
                    "A: I'd like you to meet our director. Could you come back on {day} at {time}?|C: Of course.",
                ),
            ],
            [
                "{C} has an interview for the {position} job at {company}. {C} has worked at {previous} for {years} years "
                "and is invited to a second interview on {day} at {time}.",
                "{A} interviews {C} for the {position} position and asks {C} to come back to {company} on {day} at {time}.",
            ],
        ),
        outcome(
            "offer",
            [
                step(
                    "A: Frankly, we're impressed. We'd like to offer you the job. The salary is {salary} a month."
                    "|C: That's wonderful! When would I start?|A: On {date}.",
                    "A: I'll be honest, you're the best candidate we've seen. The job is yours, at {salary} a month, "
                    "starting {date}.|C: Thank you! I accept.",
                ),
            ],
            [
                "{A} interviews {C} for the {position} position at {company} and offers {C} the job at {salary} a month, "
                "starting on {date}.",
                "{C}, who has worked at {previous} for {years} years, gets the {position} job at {company}. {C} starts on "
                "{date} with a salary of {salary} a month.",
            ],
        ),
        outcome(
            "wait",
            [
                step(
                    "A: Thank you. We'll let you know by {day}.|C: I look forward to hearing from you.",
                    "A: We still have other candidates to see. You'll hear from us by {day}.|C: I look forward to it.",
                ),
            ],
            [
                "{C} interviews for the {position} job at {company} and talks about {years} years at {previous}. {A} will "
                "give an answer by {day}.",
                "{A} interviews {C} for the {position} position at {company} and promises an answer by {day}.",
            ],
        ),
    ),
    closing=(
        step(
            "A: Thank you for coming in.|C: Thank you for your time.",
            "C: Thank you for seeing me.|A: It was nice to meet you.",
            chance=0.8,
        ),
    ),
)

COURSES = pool(
    "Spanish for beginners; business English; web design; creative writing; basic accounting; yoga; first aid; "
    "French conversation; digital marketing",
    "Italian cooking; public speaking",
)
COURSE_WEEKS = pool("6; 8; 10; 12")
COURSE_ENROLMENT = Scenario(
    topic="course enrolment",
    slots={
        "course": COURSES,
        "alt_course": COURSES,
        "weeks": COURSE_WEEKS,
        "weekday": WEEKDAYS,
        "fee": PRICES,
        "date": DATES,
        "first": FIRST_NAMES,
        "surname": SURNAMES,
    },
    opening=(
        step(
            "C: Hi, I'd like to sign up for the {course} course.|A: Sure. Have you studied with us before?"
            "|C: No, this is my first time.",
            "A: Student office. How can I help?|C: I'm interested in the {course} course. Is it still open?",
            "C: Excuse me, where do I enrol for {course}?|A: Right here.",
        ),
        SMALL_TALK,
        step(
            "A: Do you have any experience?|C: Only a little, from school.",
            "A: How did you hear about the course?|C: A friend told me about it.",
            chance=0.5,
        ),
        step(
            "A: It runs for {weeks} weeks, every {weekday} evening.|C: And how much is it?|A: It's {fee}.",
            "C: How long is the course?|A: {weeks} weeks, on {weekday} evenings. The fee is {fee}.",
            "C: How much does it cost?|A: {fee} for {weeks} weeks. Classes are on {weekday}.",
        ),
    ),
    outcomes=(
        outcome(
            "enrolled",
            [
                step(
                    "A: There are still places left. Can I have your name?|C: {first} {surname}.",
                    "A: Good news, there are a few places left. Your full name, please?|C: {first} {surname}.",
                ),
                step(
                    "A: You're enrolled. The first class is on {date}.|C: Great!",
                    "A: Done. See you on {date} for the first class.",
                ),
                step(
                    "C: Do I need to buy a book?|A: No, we provide all the materials.",
                    "C: Can I pay by card?|A: Yes, of course.",
                    chance=0.5,
                ),
            ],
            [
                "{C} enrols in the {course} course, which runs for {weeks} weeks and costs {fee}. The first class is on "
                "{date}.",
                "{A} signs {C} up for {course}, {weeks} weeks of classes on {weekday} for {fee}, starting on {date}.",
            ],
        ),
        outcome(
            "waitlist",
            [
                step(
                    "A: I'm sorry, the course is full. I can put you on the waiting list."
                    "|C: Yes, please. My name is {first} {surname}.",
                    "A: Unfortunately there are no places left. Shall I add you to the waiting list?"
                    "|C: Please do. It's {first} {surname}.",
                ),
                step("C: How likely is it that I get a place?|A: People often drop out in the first week.", chance=0.6),
            ],
            [
                "{C} wants to join the {course} course, but it is full, so {A} puts {C} on the waiting list.",
                "The {course} course is full, so {C} joins the waiting list under the name {first} {surname}.",
            ],
        ),
        outcome(
            "other course",
            [
                step(
                    "A: That course is full, but there's a place in {alt_course}, which starts on {date}."
                    "|C: That sounds interesting too. I'll take it.",
                    "A: Sorry, it's full. Would you consider {alt_course} instead? It starts on {date}."
                    "|C: Why not? Sign me up.",
                ),
                step("A: Can I have your name?|C: {first} {surname}.", chance=0.7),
            ],
            [
                "The {course} course is full, so {C} enrols in {alt_course} instead, starting on {date}.",
                "{C} wants to take {course}, but {A} says it's full, so {C} signs up for {alt_course}, which starts on "
                "{date}.",
            ],
        ),
    ),
    closing=(GOODBYE,),
)

SCENARIOS = (DOCTOR, JOB_INTERVIEW, COURSE_ENROLMENT)
