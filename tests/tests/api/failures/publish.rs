//! notify's publishing to the bus: when a call fails partway through a batch, Lambda is asked to
//! hand over again the records from the first event not on the bus, and no earlier one.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_eventbridge::Client as EventBridge;
use aws_sdk_eventbridge::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use integration_tests::event_source::resume_from;
use integration_tests::mocks::{eventbridge_client, eventbridge_error};
use integration_tests::sample_stream_record;
use shared::events::EventBus;

use super::*;

/// `count` stream records, each a file's verification (the sample's `MODIFY`), in stream order.
fn verifications(count: usize) -> Vec<EventRecord> {
    let verification = sample_stream_record("MODIFY");
    (0..count)
        .map(|index| {
            let mut record = verification.clone();
            record["eventID"] = format!("event-{index}").into();
            record["dynamodb"]["SequenceNumber"] = format!("{:021}", 100 + index).into();
            serde_json::from_value(record).unwrap()
        })
        .collect()
}

/// PutEvents taking every entry it is given.
fn accepted(input: &PutEventsInput) -> PutEventsOutput {
    let entries = input
        .entries()
        .iter()
        .enumerate()
        .map(|(index, _)| {
            PutEventsResultEntry::builder()
                .event_id(format!("bus-{index}"))
                .build()
        })
        .collect();
    PutEventsOutput::builder()
        .failed_entry_count(0)
        .set_entries(Some(entries))
        .build()
}

/// notify's answer to `records` over a bus answered by `rules`.
async fn notify_over(records: &[EventRecord], rules: &[&Rule]) -> DynamoDbEventResponse {
    let api = TestApi::mocked(&[], &[]);
    let bus = EventBus::new(eventbridge_client(rules), "mocked-bus");
    let mut event = StreamEvent::default();
    event.records = records.to_vec();
    as_function(
        "notify",
        notify::handle(&bus, &api.services.table.usages, event),
    )
    .await
}

#[tokio::test]
async fn a_bus_failing_after_the_first_ten_events_has_only_the_rest_handed_over_again() {
    // GIVEN twelve verifications, and a bus that takes the first call of ten entries and answers
    // every attempt at the second (the last two) with a 500
    let records = verifications(12);
    let first_ten = mock!(EventBridge::put_events)
        .match_requests(|input| input.entries().len() == 10)
        .then_compute_output(accepted);
    let last_two = mock!(EventBridge::put_events)
        .match_requests(|input| input.entries().len() == 2)
        .then_http_response(|| eventbridge_error(500, "InternalException"));

    // WHEN notify is handed the batch
    let answer = notify_over(&records, &[&first_ten, &last_two]).await;

    // THEN Lambda is asked to resume from the eleventh record: the ten events on the bus are not
    // published again
    assert_eq!(resume_from(&records, &answer), Some(10), "{answer:?}");
    assert_eq!(first_ten.num_calls(), 1);
    assert_eq!(last_two.num_calls(), ATTEMPTS);

    // WHEN the rest is handed over again to a bus that takes it
    let healthy = mock!(EventBridge::put_events).then_compute_output(accepted);
    let answer = notify_over(&records[10..], &[&healthy]).await;

    // THEN the batch is done
    assert_eq!(resume_from(&records[10..], &answer), None, "{answer:?}");
}

#[tokio::test]
async fn an_entry_the_bus_refuses_is_handed_over_again_with_those_after_it() {
    // GIVEN five verifications, and a bus that refuses the fourth entry of its call
    let records = verifications(5);
    let refusing = mock!(EventBridge::put_events).then_compute_output(|input| {
        let entries = (0..input.entries().len())
            .map(|index| match index {
                3 => PutEventsResultEntry::builder()
                    .error_code("InternalFailure")
                    .error_message("mocked")
                    .build(),
                _ => PutEventsResultEntry::builder().event_id("bus").build(),
            })
            .collect();
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .set_entries(Some(entries))
            .build()
    });

    // WHEN notify is handed the batch
    let answer = notify_over(&records, &[&refusing]).await;

    // THEN Lambda is asked to resume from the fourth record
    assert_eq!(resume_from(&records, &answer), Some(3), "{answer:?}");
}
